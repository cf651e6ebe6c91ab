"""Running EXTRACT with the built-in extractors: DuckDB's CSV reader plus C# conversions.

Behaviour (U-SQL "Extractor Parameters"): fields split on the delimiter; with ``quoting`` a
field in double quotes may hold delimiters and row breaks and ``""`` stands for ``"``; rows end
at ``\\r\\n``, ``\\r`` or ``\\n``; a UTF-8 byte-order mark is skipped; the first
``skipFirstNRows`` rows are skipped. An empty unquoted field is null (``""`` quoted is the empty
string), as is a field equal to ``nullEscape``. A null for a non-nullable type, a value that does
not convert (``int``, ``DateTime`` via ``DateTime.Parse`` on en-US, ``bool`` as
``True``/``False``, ...), or a row with the wrong number of columns is an error naming the file
and row — or, with ``silent: true``, the row is skipped.

The fast path is one lazy DuckDB view; only when it fails does :func:`diagnose` re-read the
files (row by row, on the error path only) to name the first bad file, row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azhpc.usql import bound as b
from azhpc.usql.filesets import MatchedFile, parse_pattern
from azhpc.usql.sqlgen import literal_sql, quote
from azhpc.usql.types import DATETIME_FORMATS, Kind, UType, parse_csharp_datetime

if TYPE_CHECKING:
    from azhpc.lake.rooted import RootedFileSystem

__all__ = [
    "EXTRACT_MARK",
    "ExtractFailure",
    "diagnose",
    "extract_sql",
    "list_files",
    "local_copy",
    "virtual_value",
]

#: Prefix of the messages the extract view raises for a bad value.
EXTRACT_MARK = "AZHPC_USQL_EXTRACT"
_READ_AS_TEXT = frozenset({Kind.DATETIME, Kind.BOOL, Kind.GUID, Kind.CHAR, Kind.BYTES})
_FORMATS = "[" + ", ".join(f"'{f}'" for f in DATETIME_FORMATS) + "]"
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


@dataclass(frozen=True)
class ExtractFailure:
    """The first bad row :func:`diagnose` found."""

    file: str
    row: int
    message: str
    column_count: bool = False


def list_files(extract: b.BoundExtract, lake: RootedFileSystem) -> list[MatchedFile] | str:
    """The files an EXTRACT reads with their virtual values, or a message naming a missing file."""
    files: list[MatchedFile] = []
    for fileset in extract.files:
        pattern = parse_pattern(fileset.pattern)
        if not pattern.is_fileset:
            if not lake.isfile(fileset.pattern):
                return fileset.pattern
            files.append(MatchedFile(fileset.pattern, {}))
            continue
        found_files = lake.glob(pattern.glob, detail=True)
        for path in sorted(p for p, info in found_files.items() if info["type"] == "file"):
            found = pattern.match(path)
            if found is not None:
                files.append(found)
    return files


def local_copy(lake: RootedFileSystem, path: str, scratch: str) -> str:
    """A file on this machine with the bytes of lake file ``path``: the lake's own file on the
    ``local`` profile (DuckDB reads it in place), else a copy in ``scratch``."""
    found = lake.local_path(path)
    if found is not None:
        return found
    target = os.path.join(scratch, f"{uuid.uuid4().hex}_{posixpath.basename(path)}")
    lake.get_file(path, target)
    return target


def _local_files(files, lake, options: b.ExtractOptions, scratch: str) -> list[str]:
    paths = []
    for matched in files:
        path = local_copy(lake, matched.path, scratch)
        if options.encoding not in ("utf-8", "ascii"):
            target = os.path.join(scratch, f"{uuid.uuid4().hex}.utf8")
            with open(path, "rb") as raw:
                text = raw.read().decode(options.encoding)
            with open(target, "w", encoding="utf-8", newline="") as out:
                out.write(text.lstrip("\ufeff"))
            path = target
        paths.append(path)
    return paths


def _read_type(utype: UType) -> str:
    return "VARCHAR" if utype.kind in _READ_AS_TEXT else utype.duckdb


def _convert(raw: str, utype: UType) -> str:
    """SQL converting a raw column to ``utype``; NULL where conversion fails."""
    kind = utype.kind
    if kind is Kind.DATETIME:
        return f"try_strptime(trim({raw}), {_FORMATS})"
    if kind is Kind.BOOL:
        return f"(CASE lower(trim({raw})) WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)"
    if kind is Kind.GUID:
        return f"try_cast(trim({raw}) AS UUID)"
    if kind is Kind.CHAR:
        return f"(CASE WHEN length({raw}) = 1 THEN {raw} END)"
    return raw


def extract_sql(
    extract: b.BoundExtract,
    files: list[MatchedFile],
    lake: RootedFileSystem,
    scratch: str,
) -> str:
    """The SELECT that yields an EXTRACT's rowset (columns ``c0..``) from its files."""
    schema = extract.schema
    options = extract.options
    if not files:
        cols = ", ".join(
            f"CAST(NULL AS {c.type.duckdb}) AS c{i}" for i, c in enumerate(schema.columns)
        )
        return f"SELECT {cols} WHERE FALSE"
    paths = _local_files(files, lake, options, scratch)
    columns = ", ".join(
        f"'r{i}': '{_read_type(schema.columns[i].type)}'" for i in extract.data_columns
    )
    nulls = [""] if options.null_escape is None else ["", options.null_escape]
    args = [
        "[" + ", ".join(quote(p) for p in paths) + "]",
        f"columns={{{columns}}}",
        f"delim={quote(options.delimiter)}",
        "header=false",
        "auto_detect=false",
        f"quote={quote(chr(34) if options.quoting else '')}",
        f"escape={quote(chr(34) if options.quoting else '')}",
        "allow_quoted_nulls=false",
        "nullstr=[" + ", ".join(quote(x) for x in nulls) + "]",
        f"skip={options.skip_first_n_rows}",
        "strict_mode=true",
        "null_padding=false",
        f"ignore_errors={'true' if options.silent else 'false'}",
        "filename=true",
    ]
    if options.row_delimiter is not None:
        args.append(f"new_line={quote(options.row_delimiter)}")
    source = f"read_csv({', '.join(args)}) AS r"
    virtual = [i for i in range(len(schema.columns)) if i not in extract.data_columns]
    if virtual:
        rows = []
        for matched, path in zip(files, paths, strict=True):
            cells = [quote(path)]
            for i in virtual:
                column = schema.columns[i]
                cells.append(virtual_value(matched.values.get(column.name), column.type))
            rows.append("(" + ", ".join(cells) + ")")
        names = ", ".join(["fname", *(f"v{i}" for i in virtual)])
        source += f" JOIN (VALUES {', '.join(rows)}) AS f({names}) ON r.filename = f.fname"
    selects: list[str] = []
    checks: list[str] = []
    for i, column in enumerate(schema.columns):
        if i not in extract.data_columns:
            selects.append(f"f.v{i} AS c{i}")
            continue
        raw = f"r.r{i}"
        value = _convert(raw, column.type)
        bad = []
        if value != raw:
            bad.append(f"({raw} IS NOT NULL AND {value} IS NULL)")
        if not column.type.nullable:
            bad.append(f"{raw} IS NULL")
        if not bad:
            selects.append(f"{value} AS c{i}")
            continue
        condition = " OR ".join(bad)
        if options.silent:
            checks.append(f"NOT ({condition})")
            selects.append(f"{value} AS c{i}")
        else:
            fail = f"error({quote(f'{EXTRACT_MARK}|{column.name}')})"
            selects.append(f"(CASE WHEN {condition} THEN {fail} ELSE {value} END) AS c{i}")
    sql = f"SELECT {', '.join(selects)} FROM {source}"
    if checks:
        sql += " WHERE " + " AND ".join(checks)
    return sql


def virtual_value(value: object, utype: UType) -> str:
    """SQL for the value of a virtual column (``NULL`` of the type when ``value`` is None)."""
    if value is None:
        return f"CAST(NULL AS {utype.duckdb})"
    if utype.kind is Kind.STRING:
        return quote(str(value))
    if utype.kind is Kind.DATETIME:
        return literal_sql(value, utype)
    return f"CAST({quote(str(value))} AS {utype.duckdb})"


def _check_value(text: str, utype: UType) -> str | None:
    """Why ``text`` does not convert to ``utype`` (``None`` when it does)."""
    kind = utype.kind
    try:
        if utype.is_integral:
            if not _INTEGER.fullmatch(text):
                raise ValueError
        elif utype.is_floating or kind is Kind.DECIMAL:
            float(text)
        elif kind is Kind.DATETIME:
            parse_csharp_datetime(text)
        elif kind is Kind.BOOL:
            if text.strip().lower() not in ("true", "false"):
                raise ValueError
        elif kind is Kind.GUID:
            uuid.UUID(text.strip())
        elif kind is Kind.CHAR and len(text) != 1:
            raise ValueError
    except ValueError:
        return f"the value '{text}' cannot be converted to {utype}"
    return None


def _rows(text: str, options: b.ExtractOptions):
    if options.quoting:
        return csv.reader(io.StringIO(text, newline=""), delimiter=options.delimiter)
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return (line.split(options.delimiter) for line in lines)


def diagnose(
    extract: b.BoundExtract, files: list[MatchedFile], lake: RootedFileSystem
) -> ExtractFailure | None:
    """Re-read an EXTRACT's files to find the first row that fails (error path only)."""
    options = extract.options
    schema = extract.schema
    nulls = {"", options.null_escape} if options.null_escape is not None else {""}
    width = len(extract.data_columns)
    for matched in files:
        with lake.open(matched.path, "rb") as handle:
            data = handle.read()
        if options.encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        text = data.decode(options.encoding, errors="replace").lstrip("\ufeff")
        for number, row in enumerate(_rows(text, options), start=1):
            if number <= options.skip_first_n_rows:
                continue
            if len(row) != width:
                return ExtractFailure(
                    matched.path,
                    number,
                    f"the row has {len(row)} columns but the EXTRACT schema has {width}",
                    column_count=True,
                )
            for value, index in zip(row, extract.data_columns, strict=True):
                column = schema.columns[index]
                if value in nulls:
                    if not column.type.nullable:
                        return ExtractFailure(
                            matched.path,
                            number,
                            f"column '{column.name}' is empty (null) but its type "
                            f"{column.type} is not nullable; declare it {column.type}?",
                        )
                    continue
                problem = _check_value(value, column.type)
                if problem:
                    return ExtractFailure(
                        matched.path, number, f"column '{column.name}': {problem}"
                    )
    return None
