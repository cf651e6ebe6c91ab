"""Running OUTPUT with the built-in outputters, byte for byte as documented.

Defaults (U-SQL "Outputter Parameters"): string and char values in double quotes with ``"``
doubled (``quoting: true``); other types unquoted; null as nothing (or ``nullEscape``); the
empty string as ``""``; ``DateTime`` in the round-trip ``"O"`` format
(``2012-02-15T11:53:16.0000000``); ``double`` with C#'s 15 significant digits; ``bool`` as
``True``/``False``; rows end with ``\\r\\n``; no header unless ``outputHeader: true`` (names
quoted like strings); UTF-8 without a byte-order mark.

DuckDB formats every row into one string; the strings of a record batch lie back to back in the
Arrow buffer, which is written as is (no per-row Python).
"""

from __future__ import annotations

from typing import IO

import numpy as np

from azhpc.usql import bound as b
from azhpc.usql.bind_options import csharp_datetime_format
from azhpc.usql.sqlgen import quote, to_string_sql
from azhpc.usql.types import Kind

__all__ = ["output_sql", "write_batches"]


def _cell(sql: str, column: b.Column, options: b.OutputOptions) -> str:
    utype = column.type.with_nullable(False)
    kind = utype.kind
    if kind is Kind.DATETIME:
        text = f"strftime({sql}, {quote(csharp_datetime_format(options.date_time_format) or '')})"
    else:
        text = to_string_sql(sql, utype)
    if options.quoting and kind in (Kind.STRING, Kind.CHAR):
        text = f"('\"' || replace({text}, '\"', '\"\"') || '\"')"
    null = quote(options.null_escape or "")
    return f"coalesce({text}, {null})"


def _header(schema: b.Schema, options: b.OutputOptions) -> str:
    names = []
    for column in schema.columns:
        name = column.name
        if options.quoting:
            name = '"' + name.replace('"', '""') + '"'
        names.append(name)
    return options.delimiter.join(names) + options.row_delimiter


def output_sql(output: b.BoundOutput) -> str:
    """A SELECT yielding one formatted line (row delimiter included) per row, in order."""
    options = output.options
    delimiter = quote(options.delimiter)
    cells = [_cell(f"c{i}", c, options) for i, c in enumerate(output.schema.columns)]
    line = f" || {delimiter} || ".join(cells) + f" || {quote(options.row_delimiter)}"
    sql = f"SELECT {line} AS line FROM {output.relation}"
    if output.order_by:
        keys = ", ".join(
            f"c{i} {'DESC NULLS LAST' if desc else 'ASC NULLS FIRST'}"
            for i, desc in output.order_by
        )
        sql += f" ORDER BY {keys}"
    return sql


def write_batches(reader, sink: IO[bytes], output: b.BoundOutput) -> int:
    """Write the lines of a pyarrow ``RecordBatchReader`` to ``sink``; returns the row count."""
    options = output.options
    encoding = options.encoding
    rows = 0
    if options.output_header:
        sink.write(_header(output.schema, options).encode(encoding))
    for batch in reader:
        column = batch.column(0)
        count = len(column)
        if not count:
            continue
        rows += count
        width = 8 if str(column.type) == "large_string" else 4
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if width == 8 else np.int32)
        start = int(offsets[column.offset])
        end = int(offsets[column.offset + count])
        data = memoryview(column.buffers()[2])[start:end]
        if encoding in ("utf-8", "ascii"):
            sink.write(data)
        else:
            sink.write(bytes(data).decode("utf-8").encode(encoding))
    return rows
