"""Checking the arguments of the built-in extractors and outputters against their documentation.

Defaults (U-SQL reference, "Extractor Parameters" and "Outputter Parameters"): ``delimiter``
``','`` (``Csv``), ``'\\t'`` (``Tsv``), ``','`` (``Text``, the only one that accepts it);
``encoding`` UTF-8; ``quoting`` true; ``nullEscape`` none; ``silent`` false; ``skipFirstNRows`` 0;
extractors accept ``\\r\\n``, ``\\r`` and ``\\n`` as row delimiters; outputters write ``\\r\\n``,
no header, ``DateTime`` in the round-trip ``"O"`` format.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from azhpc.usql import bound as b
from azhpc.usql import nodes as n
from azhpc.usql.errors import ErrorCode
from azhpc.usql.types import Kind

if TYPE_CHECKING:
    from azhpc.usql.binder import Binder

__all__ = ["csharp_datetime_format", "extract_options", "output_options"]

_ENCODINGS = {
    "UTF8": "utf-8",
    "Unicode": "utf-16-le",
    "BigEndianUnicode": "utf-16-be",
    "UTF32": "utf-32-le",
    "UTF7": "utf-7",
    "ASCII": "ascii",
    "Default": "utf-8",
}
_DELIMITERS = {"Extractors.Csv": ",", "Extractors.Tsv": "\t", "Extractors.Text": ","}
_OUT_DELIMITERS = {"Outputters.Csv": ",", "Outputters.Tsv": "\t", "Outputters.Text": ","}
_EXTRACT_PARAMS = (
    "delimiter",
    "encoding",
    "escapeCharacter",
    "nullEscape",
    "quoting",
    "rowDelimiter",
    "silent",
    "skipFirstNRows",
    "charFormat",
)
_OUTPUT_PARAMS = (
    "delimiter",
    "dateTimeFormat",
    "encoding",
    "escapeCharacter",
    "nullEscape",
    "quoting",
    "rowDelimiter",
    "charFormat",
    "outputHeader",
)
_ROW_DELIMITERS = ("\r\n", "\n", "\r")
_CSHARP_DATE_TOKENS = (
    ("yyyy", "%Y"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("dd", "%d"),
    ("d", "%-d"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("h", "%-I"),
    ("mm", "%M"),
    ("m", "%-M"),
    ("ss", "%S"),
    ("s", "%-S"),
    ("tt", "%p"),
    ("fffffff", "%f0"),
    ("ffffff", "%f"),
    ("fff", "%g"),
)


def csharp_datetime_format(fmt: str | None) -> str | None:
    """A DuckDB ``strftime`` format for a C# ``DateTime`` format; ``None`` when unsupported.

    ``"O"``/``"o"`` is the round trip format ``yyyy-MM-ddTHH:mm:ss.fffffff``; ``"s"`` the sortable
    one; ``None`` (C#'s ``ToString()`` on en-US) is ``M/d/yyyy h:mm:ss tt``.
    """
    if fmt is None:
        return "%-m/%-d/%Y %-I:%M:%S %p"
    if fmt in ("O", "o"):
        return "%Y-%m-%dT%H:%M:%S.%f0"
    if fmt == "s":
        return "%Y-%m-%dT%H:%M:%S"
    if len(fmt) == 1:
        return None
    out: list[str] = []
    i = 0
    while i < len(fmt):
        for token, replacement in _CSHARP_DATE_TOKENS:
            if fmt.startswith(token, i):
                out.append(replacement)
                i += len(token)
                break
        else:
            ch = fmt[i]
            if ch.isalpha():
                return None
            if ch == "\\" and i + 1 < len(fmt):
                ch = fmt[i + 1]
                i += 1
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def _args(using: n.UdoCall, binder: Binder, allowed: tuple[str, ...]):
    seen: dict[str, n.NamedArg] = {}
    for arg in using.args:
        if arg.name is None:
            raise binder.error(
                ErrorCode.INVALID_UDO_ARGUMENT,
                f"{using.name}: pass arguments by name ({', '.join(allowed)})",
                arg.span,
            )
        if arg.name not in allowed:
            raise binder.error(
                ErrorCode.INVALID_UDO_ARGUMENT,
                f"{using.name} has no parameter '{arg.name}'; valid: {', '.join(allowed)}",
                arg.span,
            )
        if arg.name in seen:
            raise binder.error(
                ErrorCode.INVALID_UDO_ARGUMENT, f"'{arg.name}' given twice", arg.span
            )
        seen[arg.name] = arg
    return seen


def _value(binder: Binder, arg: n.NamedArg, kinds: tuple[Kind, ...], nullable: bool = False):
    if arg.name == "encoding":
        return _encoding(binder, arg)
    value, utype = binder.constant(arg.value)
    if value is None and nullable:
        return None
    if utype.kind not in kinds or value is None:
        wanted = " or ".join(k.value for k in kinds)
        raise binder.error(
            ErrorCode.INVALID_UDO_ARGUMENT,
            f"'{arg.name}' must be a {wanted}, not {utype}",
            arg.span,
        )
    return value


def _encoding(binder: Binder, arg: n.NamedArg) -> str:
    expr = arg.value
    if (
        isinstance(expr, n.Member)
        and isinstance(expr.target, n.Name)
        and expr.target.name in ("Encoding", "System.Text.Encoding")
        and expr.name in _ENCODINGS
    ):
        return _ENCODINGS[expr.name]
    raise binder.error(
        ErrorCode.INVALID_UDO_ARGUMENT,
        "encoding must be one of " + ", ".join(f"Encoding.{k}" for k in _ENCODINGS),
        arg.span,
    )


def _check_udo(using: n.UdoCall, binder: Binder, known: dict[str, str], what: str) -> str:
    if using.name not in known:
        raise binder.error(
            ErrorCode.NOT_SUPPORTED,
            f"not supported: {what} {using.name} (built-in: {', '.join(known)})",
            using.span,
        )
    return known[using.name]


def _unsupported(binder: Binder, args: dict[str, n.NamedArg], names: tuple[str, ...], udo: str):
    for name in names:
        if name in args:
            raise binder.error(
                ErrorCode.NOT_SUPPORTED,
                f"not supported: the {name} parameter of {udo}",
                args[name].span,
            )


def _delimiter(binder, args, name, default, udo) -> str:
    if "delimiter" not in args:
        return default
    if not name.endswith(".Text"):
        raise binder.error(
            ErrorCode.INVALID_UDO_ARGUMENT,
            f"{udo} does not take a delimiter (use {udo.rsplit('.', 1)[0]}.Text)",
            args["delimiter"].span,
        )
    return str(_value(binder, args["delimiter"], (Kind.CHAR,)))


def extract_options(using: n.UdoCall, binder: Binder) -> b.ExtractOptions:
    """Check an extractor call and return its options."""
    default = _check_udo(using, binder, _DELIMITERS, "extractor")
    args = _args(using, binder, _EXTRACT_PARAMS)
    _unsupported(binder, args, ("escapeCharacter", "charFormat"), using.name)
    options: dict[str, object] = {
        "delimiter": _delimiter(binder, args, using.name, default, using.name)
    }
    if "skipFirstNRows" in args:
        skip = _value(binder, args["skipFirstNRows"], (Kind.INT,))
        if int(skip) < 0:  # type: ignore[call-overload]
            raise binder.error(
                ErrorCode.INVALID_UDO_ARGUMENT,
                "skipFirstNRows must not be negative",
                args["skipFirstNRows"].span,
            )
        options["skip_first_n_rows"] = skip
    if "silent" in args:
        options["silent"] = _value(binder, args["silent"], (Kind.BOOL,))
    if "quoting" in args:
        options["quoting"] = _value(binder, args["quoting"], (Kind.BOOL,))
    if "nullEscape" in args:
        options["null_escape"] = _value(binder, args["nullEscape"], (Kind.STRING,), True)
    if "encoding" in args:
        options["encoding"] = _encoding(binder, args["encoding"])
    if "rowDelimiter" in args:
        row = _value(binder, args["rowDelimiter"], (Kind.STRING,))
        if row not in _ROW_DELIMITERS:
            raise binder.error(
                ErrorCode.NOT_SUPPORTED,
                "not supported: rowDelimiter other than \\r\\n, \\n or \\r",
                args["rowDelimiter"].span,
            )
        options["row_delimiter"] = row
    return b.ExtractOptions(**options)  # type: ignore[arg-type]


def output_options(using: n.UdoCall, binder: Binder) -> b.OutputOptions:
    """Check an outputter call and return its options."""
    default = _check_udo(using, binder, _OUT_DELIMITERS, "outputter")
    args = _args(using, binder, _OUTPUT_PARAMS)
    _unsupported(binder, args, ("escapeCharacter", "charFormat"), using.name)
    options: dict[str, object] = {
        "delimiter": _delimiter(binder, args, using.name, default, using.name)
    }
    if "outputHeader" in args:
        options["output_header"] = _value(binder, args["outputHeader"], (Kind.BOOL,))
    if "quoting" in args:
        options["quoting"] = _value(binder, args["quoting"], (Kind.BOOL,))
    if "nullEscape" in args:
        options["null_escape"] = _value(binder, args["nullEscape"], (Kind.STRING,), True)
    if "encoding" in args:
        options["encoding"] = _encoding(binder, args["encoding"])
    if "rowDelimiter" in args:
        row = _value(binder, args["rowDelimiter"], (Kind.STRING,))
        if not row or re.search(r"[\"]", str(row)):
            raise binder.error(
                ErrorCode.INVALID_UDO_ARGUMENT, "invalid rowDelimiter", args["rowDelimiter"].span
            )
        options["row_delimiter"] = row
    if "dateTimeFormat" in args:
        fmt = _value(binder, args["dateTimeFormat"], (Kind.STRING,), True)
        if csharp_datetime_format(fmt) is None:  # type: ignore[arg-type]
            raise binder.error(
                ErrorCode.INVALID_UDO_ARGUMENT,
                f"dateTimeFormat {fmt!r} is not a DateTime format azhpc can write",
                args["dateTimeFormat"].span,
            )
        options["date_time_format"] = fmt
    return b.OutputOptions(**options)  # type: ignore[arg-type]
