"""``NAME=VALUE`` job parameters from a command line or a magic's flags.

A value is read as a U-SQL literal when it is one: ``42`` (int), ``-1.5``/``2e3`` (double),
``true``/``false`` (bool), ``"text"`` (string, C# escapes), ``DateTime.Parse("2024-01-02")``
(DateTime). Anything else is the string itself (``--param region=en-gb``). For a variable the
script declares ``DECLARE EXTERNAL``, unquoted text is handed over as text and converted to
the declared type (``DECLARE EXTERNAL @n long = 1;`` with ``n=42`` gives ``42L``), as ADLA's
job parameters were.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

from azhpc.usql import nodes
from azhpc.usql.errors import UsqlError
from azhpc.usql.parser import parse
from azhpc.usql.types import parse_csharp_datetime

__all__ = ["parse_param", "parse_params"]

_NAME = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+)$")
_DATETIME = re.compile(r'^DateTime\.Parse\(\s*"([^"]*)"\s*\)$')


def _literal(text: str) -> object:
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return ast.literal_eval(text)  # a C#-style "..." string with backslash escapes
        except (SyntaxError, ValueError):
            return text[1:-1]
    found = _DATETIME.match(text)
    if found:
        return parse_csharp_datetime(found.group(1))
    return text


def parse_param(item: str) -> tuple[str, str]:
    """Split ``NAME=VALUE`` (``@NAME=VALUE`` too) into its name (without ``@``) and text.

    Raises
    ------
    ValueError
        No ``=``, or the name is not an identifier.

    Examples
    --------
    >>> parse_param("@region=en-gb")
    ('region', 'en-gb')
    """
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise ValueError(f"--param takes NAME=VALUE (a U-SQL variable name), got {item!r}")
    return name.lstrip("@"), value


def _external_names(script: str) -> set[str]:

    try:
        tree = parse(script, "script.usql")
    except UsqlError:
        return set()  # compiling reports the syntax error
    return {s.name for s in tree.statements if isinstance(s, nodes.Declare) and s.external}


def parse_params(items: Iterable[str], script: str = "") -> dict[str, object]:
    """``NAME=VALUE`` items as a ``params=`` mapping for :func:`azhpc.usql.run`.

    Examples
    --------
    >>> parse_params(["n=42", 'who="Ann"', "flag=true", "region=en-gb"])
    {'n': 42, 'who': 'Ann', 'flag': True, 'region': 'en-gb'}
    """
    pairs = [parse_param(item) for item in items]
    external = _external_names(script) if pairs and script else set()
    params: dict[str, object] = {}
    for name, text in pairs:
        quoted = len(text) >= 2 and text[0] == text[-1] == '"'
        params[name] = text if name in external and not quoted else _literal(text)
    return params
