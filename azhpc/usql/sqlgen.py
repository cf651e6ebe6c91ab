"""Translating bound expressions and SELECTs to DuckDB SQL, keeping C# semantics.

Every relation has columns ``c0 .. cN-1`` (U-SQL names are case-sensitive, DuckDB's are not, so
user names never reach SQL). Where C# and SQL differ the translation says so:

* two-valued nulls: ``==``/``!=`` become ``IS [NOT] DISTINCT FROM`` when an operand is nullable,
  and ``< <= > >=``, ``IN``, ``BETWEEN``, ``LIKE`` with a null operand are ``false`` (not SQL's
  unknown), so ``!(x < 1)`` is true for a null ``x`` as in C#. An expression of a non-nullable
  C# type never yields SQL NULL;
* ``int / int`` truncates (``//``), and dividing an integer by zero raises
  ``DivideByZeroException``; ``%`` keeps the dividend's sign;
* ``string + x`` concatenates with null as the empty string and formats ``x`` as C#'s
  ``ToString()`` does (``double`` with 15 significant digits, ``bool`` as ``True``/``False``);
* calling a member on a null string raises ``NullReferenceException``; ``Substring`` out of
  range raises ``ArgumentOutOfRangeException``; ``(int)x`` on a null ``int?`` raises
  ``InvalidOperationException``; ``(int)3.9`` truncates; ``Math.Round`` rounds half to even;
* ``ORDER BY`` puts nulls first when ascending, last when descending (nulls are smallest).

Run time exceptions are DuckDB ``error()`` calls carrying :data:`RUNTIME_MARK`, the script
position and the C# exception text; the executor turns them into ``UsqlError``.
"""

from __future__ import annotations

import datetime as _dt
import math
from decimal import Decimal

from azhpc.usql import bound as b
from azhpc.usql.bind_options import csharp_datetime_format
from azhpc.usql.errors import Span
from azhpc.usql.types import DATETIME_FORMATS, Kind, UType

__all__ = ["RUNTIME_MARK", "SqlGen", "quote", "to_string_sql"]

#: Prefix of the messages raised by generated ``error()`` calls.
RUNTIME_MARK = "AZHPC_USQL_RUNTIME"
_WHITESPACE = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_FORMATS = "[" + ", ".join(f"'{f}'" for f in DATETIME_FORMATS) + "]"
_JOINS = {
    "INNER": "JOIN",
    "LEFT": "LEFT JOIN",
    "RIGHT": "RIGHT JOIN",
    "FULL": "FULL OUTER JOIN",
    "CROSS": "CROSS JOIN",
    "LEFT_SEMI": "SEMI JOIN",
    "LEFT_ANTI": "ANTI JOIN",
    "RIGHT_SEMI": "SEMI JOIN",
    "RIGHT_ANTI": "ANTI JOIN",
}
_MICROS = {"day": 86_400_000_000, "hour": 3_600_000_000, "minute": 60_000_000}
_MICROS |= {"second": 1_000_000, "millisecond": 1_000}
_DEFAULTS = {Kind.BOOL: "FALSE", Kind.DATETIME: "TIMESTAMP '0001-01-01 00:00:00'"}


def quote(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def raise_sql(message: str, span: Span | None) -> str:
    """SQL that raises a C# run time exception at ``span``."""
    line, column, length = (span.line, span.column, span.length) if span else (0, 0, 1)
    return f"error({quote(f'{RUNTIME_MARK}|{line}|{column}|{length}|{message}')})"


def literal_sql(value: object, utype: UType) -> str:
    """A DuckDB literal of the given C# type."""
    duck = utype.duckdb
    if value is None:
        return f"CAST(NULL AS {duck})"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return (
            quote(value)
            if utype.kind in (Kind.STRING, Kind.CHAR, Kind.NULL)
            else (f"CAST({quote(value)} AS {duck})")
        )
    if isinstance(value, float):
        if math.isnan(value):
            return f"CAST('NaN' AS {duck})"
        if math.isinf(value):
            return f"CAST('{'-' if value < 0 else ''}Infinity' AS {duck})"
        return f"CAST({value!r} AS {duck})"
    if isinstance(value, int | Decimal):
        return (
            f"CAST('{value}' AS {duck})"
            if isinstance(value, Decimal)
            else (f"CAST({value} AS {duck})")
        )
    if isinstance(value, _dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    raise TypeError(f"no literal for {value!r}")


def to_string_sql(sql: str, utype: UType) -> str:
    """SQL for C#'s ``x.ToString()`` (null, for a nullable value type, becomes ``''``)."""
    kind = utype.kind
    if kind in (Kind.STRING, Kind.CHAR, Kind.NULL):
        return sql
    if kind is Kind.BOOL:
        text = f"(CASE WHEN {sql} THEN 'True' ELSE 'False' END)"
    elif kind in (Kind.DOUBLE, Kind.FLOAT):
        digits = 7 if kind is Kind.FLOAT else 15
        text = (
            f"(CASE WHEN isnan({sql}) THEN 'NaN' WHEN isinf({sql}) THEN "
            f"(CASE WHEN {sql} > 0 THEN 'Infinity' ELSE '-Infinity' END) "
            f"ELSE format('{{:.{digits}G}}', {sql}) END)"
        )
    elif kind is Kind.DECIMAL:
        text = f"rtrim(rtrim(CAST({sql} AS VARCHAR), '0'), '.')"
    elif kind is Kind.DATETIME:
        text = f"strftime({sql}, '{csharp_datetime_format(None)}')"
    else:
        text = f"CAST({sql} AS VARCHAR)"
    return f"coalesce({text}, '')" if utype.nullable else text


class SqlGen:
    """Generates SQL for one bound script's expressions and SELECTs."""

    # ------------------------------------------------------------------ expressions
    def expr(self, e: b.BoundExpr) -> str:
        match e:
            case b.BColumn():
                return f"t{e.source}.c{e.index}"
            case b.BLiteral():
                return literal_sql(e.value, e.type)
            case b.BUnary():
                inner = self.expr(e.operand)
                if e.op == "!":
                    return f"(NOT {inner})"
                if e.op == "+":
                    return inner
                return f"CAST(({e.op}{inner}) AS {e.type.duckdb})"
            case b.BBinary():
                return self.binary(e)
            case b.BConditional():
                duck = e.type.duckdb
                return (
                    f"(CASE WHEN {self.expr(e.cond)} THEN CAST({self.expr(e.then)} AS {duck}) "
                    f"ELSE CAST({self.expr(e.otherwise)} AS {duck}) END)"
                )
            case b.BIsNull():
                return f"({self.expr(e.operand)} IS {'NOT ' if e.negated else ''}NULL)"
            case b.BInList():
                items = ", ".join(self.expr(i) for i in e.items)
                return self.negate(f"coalesce({self.expr(e.operand)} IN ({items}), FALSE)", e)
            case b.BBetween():
                body = f"{self.expr(e.operand)} BETWEEN {self.expr(e.low)} AND {self.expr(e.high)}"
                return self.negate(f"coalesce({body}, FALSE)", e)
            case b.BLike():
                body = f"{self.expr(e.operand)} LIKE {self.expr(e.pattern)}"
                return self.negate(f"coalesce({body}, FALSE)", e)
            case b.BCast():
                return self.cast(e)
            case b.BCall():
                return self.call(e)
            case b.BAggregate():
                return self.aggregate(e)
        raise TypeError(f"cannot translate {e!r}")

    @staticmethod
    def negate(sql: str, e: b.BInList | b.BBetween | b.BLike) -> str:
        return f"(NOT {sql})" if e.negated else sql

    def binary(self, e: b.BBinary) -> str:
        op = e.op
        left, right = self.expr(e.left), self.expr(e.right)
        duck = e.type.duckdb
        nullable = e.left.type.nullable or e.right.type.nullable
        match op:
            case b.BinOp.CONCAT:
                return (
                    f"concat({to_string_sql(left, e.left.type)}, "
                    f"{to_string_sql(right, e.right.type)})"
                )
            case b.BinOp.ADD | b.BinOp.SUB | b.BinOp.MUL:
                if e.type.kind is Kind.DECIMAL and op is b.BinOp.MUL:
                    return f"CAST((CAST({left} AS DOUBLE) * CAST({right} AS DOUBLE)) AS {duck})"
                return f"CAST(({left} {op.value} {right}) AS {duck})"
            case b.BinOp.DIV:
                return f"CAST((CAST({left} AS DOUBLE) / CAST({right} AS DOUBLE)) AS {duck})"
            case b.BinOp.INT_DIV | b.BinOp.MOD:
                symbol = "//" if op is b.BinOp.INT_DIV else "%"
                body = f"CAST(({left} {symbol} {right}) AS {duck})"
                if e.type.is_floating or (
                    isinstance(e.right, b.BLiteral) and e.right.value not in (0, None)
                ):
                    return body
                fail = raise_sql(
                    "System.DivideByZeroException: Attempted to divide by zero.", e.span
                )
                return f"(CASE WHEN {right} = 0 THEN {fail} ELSE {body} END)"
            case b.BinOp.EQ | b.BinOp.NE:
                if isinstance(e.right, b.BLiteral) and e.right.value is None:
                    return f"({left} IS {'' if op is b.BinOp.EQ else 'NOT '}NULL)"
                if isinstance(e.left, b.BLiteral) and e.left.value is None:
                    return f"({right} IS {'' if op is b.BinOp.EQ else 'NOT '}NULL)"
                if nullable:
                    word = "NOT DISTINCT" if op is b.BinOp.EQ else "DISTINCT"
                    return f"({left} IS {word} FROM {right})"
                return f"({left} {'=' if op is b.BinOp.EQ else '<>'} {right})"
            case b.BinOp.LT | b.BinOp.LE | b.BinOp.GT | b.BinOp.GE:
                body = f"({left} {op.value} {right})"
                return f"coalesce({body}, FALSE)" if nullable else body
            case b.BinOp.AND:
                return f"({left} AND {right})"
            case b.BinOp.OR:
                return f"({left} OR {right})"
            case b.BinOp.BIT_AND | b.BinOp.BIT_OR:
                return f"CAST(({left} {op.value} {right}) AS {duck})"
            case b.BinOp.BIT_XOR:
                return f"CAST(xor({left}, {right}) AS {duck})"
            case b.BinOp.COALESCE:
                return f"CAST(coalesce({left}, {right}) AS {duck})"
        raise TypeError(f"operator {op}")

    def cast(self, e: b.BCast) -> str:
        inner = self.expr(e.operand)
        source, target = e.operand.type, e.type
        duck = target.duckdb
        if source.kind is Kind.NULL:
            return f"CAST(NULL AS {duck})"
        if source.nullable and not target.nullable and not target.is_reference:
            fail = raise_sql(
                "System.InvalidOperationException: Nullable object must have a value.", e.span
            )
            inner = f"(CASE WHEN {inner} IS NULL THEN {fail} ELSE {inner} END)"
        if source.kind is target.kind:
            return inner
        if source.kind is Kind.CHAR:
            return f"CAST(unicode({inner}) AS {duck})"
        if target.kind is Kind.CHAR:
            return f"chr(CAST({inner} AS INTEGER))"
        if target.is_integral and not source.is_integral:
            return f"CAST(trunc({inner}) AS {duck})"
        return f"CAST({inner} AS {duck})"

    def guard(self, receiver: b.BoundExpr, body: str, span: Span | None) -> str:
        """``body``, raising NullReferenceException when ``receiver`` is null."""
        if isinstance(receiver, b.BLiteral) and receiver.value is not None:
            return body
        if not receiver.type.nullable:
            return body
        fail = raise_sql(
            "System.NullReferenceException: Object reference not set to an instance of an object.",
            span,
        )
        return f"(CASE WHEN {self.expr(receiver)} IS NULL THEN {fail} ELSE {body} END)"

    def call(self, e: b.BCall) -> str:
        args = [self.expr(a) for a in e.args]
        x = args[0] if args else ""
        f = b.Builtin
        span = e.span
        match e.func:
            case f.LENGTH:
                return self.guard(e.args[0], f"CAST(length({x}) AS INTEGER)", span)
            case f.UPPER:
                return self.guard(e.args[0], f"upper({x})", span)
            case f.LOWER:
                return self.guard(e.args[0], f"lower({x})", span)
            case f.TRIM | f.TRIM_START | f.TRIM_END:
                chars = " || ".join(args[1:]) if len(args) > 1 else _WHITESPACE
                fn = {f.TRIM: "trim", f.TRIM_START: "ltrim"}.get(e.func, "rtrim")
                return self.guard(e.args[0], f"{fn}({x}, {chars})", span)
            case f.CONTAINS:
                return self.guard(e.args[0], f"coalesce(contains({x}, {args[1]}), FALSE)", span)
            case f.STARTS_WITH:
                return self.guard(e.args[0], f"coalesce(starts_with({x}, {args[1]}), FALSE)", span)
            case f.ENDS_WITH:
                return self.guard(e.args[0], f"coalesce(suffix({x}, {args[1]}), FALSE)", span)
            case f.STRING_EQUALS:
                return self.guard(e.args[0], f"({x} IS NOT DISTINCT FROM {args[1]})", span)
            case f.SUBSTRING:
                return self.guard(e.args[0], self.substring(args, span), span)
            case f.INDEX_OF:
                return self.guard(e.args[0], f"CAST(strpos({x}, {args[1]}) - 1 AS INTEGER)", span)
            case f.REPLACE:
                return self.guard(e.args[0], f"replace({x}, {args[1]}, {args[2]})", span)
            case f.SPLIT:
                if len(args) == 2:
                    body = f"string_split({x}, {args[1]})"
                else:
                    chars = " || ".join(f"regexp_escape({a})" for a in args[1:])
                    body = f"string_split_regex({x}, '[' || {chars} || ']')"
                return self.guard(e.args[0], body, span)
            case f.IS_NULL_OR_EMPTY:
                return f"coalesce({x} = '', TRUE)"
            case f.IS_NULL_OR_WHITESPACE:
                return f"coalesce(trim({x}, {_WHITESPACE}) = '', TRUE)"
            case f.STRING_CONCAT:
                parts = [to_string_sql(s, a.type) for s, a in zip(args, e.args, strict=True)]
                return f"concat({', '.join(parts)})"
            case f.STRING_JOIN:
                items = f"list_transform({args[1]}, lambda v: coalesce(CAST(v AS VARCHAR), ''))"
                return self.guard(e.args[1], f"array_to_string({items}, {x})", span)
            case f.TO_STRING:
                rtype = e.args[0].type
                if rtype.is_reference:
                    return self.guard(e.args[0], to_string_sql(x, rtype.with_nullable(False)), span)
                return to_string_sql(x, rtype)
            case f.DATETIME_PARSE:
                fail = raise_sql(
                    "System.FormatException: String was not recognized as a valid DateTime.", span
                )
                parsed = f"try_strptime(trim({x}), {_FORMATS})"
                return self.guard(e.args[0], f"coalesce({parsed}, {fail})", span)
            case f.NEW_DATETIME:
                parts = args + ["0"] * (6 - len(args))
                return f"make_timestamp({', '.join(parts)})"
            case f.DT_PART:
                if e.detail == "millisecond":
                    return f"CAST(millisecond({x}) % 1000 AS INTEGER)"
                return f"CAST({e.detail}({x}) AS INTEGER)"
            case f.DT_DATE:
                return f"date_trunc('day', {x})"
            case f.DT_ADD:
                if e.detail in ("month", "year"):
                    return f"({x} + to_{e.detail}s(CAST({args[1]} AS INTEGER)))"
                micros = _MICROS[e.detail]
                return f"({x} + to_microseconds(CAST(round({args[1]} * {micros}) AS BIGINT)))"
            case f.PARSE_NUMBER:
                return self.parse_number(e, x, span)
            case f.ARRAY_OF:
                return x
            case f.ARRAY_INDEX:
                fail = raise_sql(
                    "System.IndexOutOfRangeException: Index was outside the bounds of the array.",
                    span,
                )
                body = (
                    f"(CASE WHEN {args[1]} < 0 OR {args[1]} >= len({x}) THEN {fail} "
                    f"ELSE {x}[{args[1]} + 1] END)"
                )
                return self.guard(e.args[0], body, span)
            case f.ARRAY_COUNT:
                return self.guard(e.args[0], f"CAST(len({x}) AS INTEGER)", span)
            case f.ARRAY_CONTAINS:
                return self.guard(
                    e.args[0], f"coalesce(list_contains({x}, {args[1]}), FALSE)", span
                )
            case f.HAS_VALUE:
                return f"({x} IS NOT NULL)"
            case f.VALUE:
                fail = raise_sql(
                    "System.InvalidOperationException: Nullable object must have a value.", span
                )
                return f"(CASE WHEN {x} IS NULL THEN {fail} ELSE {x} END)"
            case f.GET_VALUE_OR_DEFAULT:
                default = _DEFAULTS.get(e.type.kind, f"CAST(0 AS {e.type.duckdb})")
                return f"coalesce({x}, {default})"
            case f.ABS:
                return f"abs({x})"
            case f.FLOOR:
                return f"CAST(floor({x}) AS {e.type.duckdb})"
            case f.CEILING:
                return f"CAST(ceil({x}) AS {e.type.duckdb})"
            case f.ROUND:
                if e.detail == "cast":
                    return f"CAST({x} AS {e.type.duckdb})"
                digits = args[1] if len(args) > 1 else "0"
                return f"CAST(round_even({x}, {digits}) AS {e.type.duckdb})"
            case f.MATH_MIN:
                return f"CAST(least({x}, {args[1]}) AS {e.type.duckdb})"
            case f.MATH_MAX:
                return f"CAST(greatest({x}, {args[1]}) AS {e.type.duckdb})"
            case f.NEW_GUID:
                fail = raise_sql("System.FormatException: Unrecognized Guid format.", span)
                return self.guard(e.args[0], f"coalesce(try_cast({x} AS UUID), {fail})", span)
        raise TypeError(f"no translation for {e.func}")

    @staticmethod
    def substring(args: list[str], span: Span | None) -> str:
        x, start = args[0], args[1]
        fail = raise_sql(
            "System.ArgumentOutOfRangeException: startIndex or length is out of range.", span
        )
        if len(args) == 2:
            bad = f"{start} < 0 OR {start} > length({x})"
            return f"(CASE WHEN {bad} THEN {fail} ELSE substring({x}, {start} + 1) END)"
        size = args[2]
        bad = f"{start} < 0 OR {size} < 0 OR {start} + {size} > length({x})"
        return f"(CASE WHEN {bad} THEN {fail} ELSE substring({x}, {start} + 1, {size}) END)"

    def parse_number(self, e: b.BCall, x: str, span: Span | None) -> str:
        target = e.type
        text = f"trim({x})"
        if target.is_integral:
            ok = f"regexp_full_match({text}, '[+-]?[0-9]+')"
            value = f"try_cast({text} AS {target.duckdb})"
        elif target.kind is Kind.BOOL:
            ok = f"lower({text}) IN ('true', 'false')"
            value = f"(lower({text}) = 'true')"
        else:
            ok = "TRUE"
            value = f"try_cast({text} AS {target.duckdb})"
        fail = raise_sql("System.FormatException: Input string was not in a correct format.", span)
        body = f"(CASE WHEN {ok} AND {value} IS NOT NULL THEN {value} ELSE {fail} END)"
        return self.guard(e.args[0], body, span)

    def aggregate(self, e: b.BAggregate) -> str:
        distinct = "DISTINCT " if e.distinct else ""
        if e.arg is None:
            return "count(*)"
        arg = self.expr(e.arg)
        match e.func:
            case "COUNT":
                return f"count({distinct}{arg})"
            case "SUM":
                return f"CAST(sum({distinct}{arg}) AS {e.type.duckdb})"
            case "AVG":
                return f"CAST(avg({distinct}{arg}) AS {e.type.duckdb})"
            case "MIN" | "MAX":
                return f"{e.func.lower()}({arg})"
            case "ARRAY_AGG":
                return f"list({distinct}{arg})"
            case "ANY_VALUE":
                return f"any_value({arg})"
        raise TypeError(f"aggregate {e.func}")

    # ------------------------------------------------------------------ queries
    def source(self, src: b.BoundSource) -> str:
        if src.relation is not None:
            return src.relation
        if src.values is not None:
            rows = []
            for row in src.values:
                cells = (
                    f"CAST({self.expr(v)} AS {c.type.duckdb})"
                    for v, c in zip(row, src.schema.columns, strict=True)
                )
                rows.append("(" + ", ".join(cells) + ")")
            return "(VALUES " + ", ".join(rows) + ")"
        assert src.query is not None
        return f"({self.query(src.query)})"

    def from_clause(self, q: b.BoundSelect) -> str:
        if not q.sources:
            return ""
        first = f"{self.source(q.sources[0])} AS t0{self.column_list(q.sources[0])}"
        parts = [first]
        for step in q.steps:
            if isinstance(step, b.BoundApply):
                lateral = f"(SELECT unnest({self.expr(step.expr)}) AS c0) AS t{step.source}"
                if step.outer:
                    parts.append(f"LEFT JOIN LATERAL {lateral} ON TRUE")
                else:
                    parts.append(f"CROSS JOIN LATERAL {lateral}")
                continue
            src = q.sources[step.source]
            text = f"{self.source(src)} AS t{step.source}{self.column_list(src)}"
            on = f" ON {self.expr(step.condition)}" if step.condition is not None else ""
            if step.kind in ("RIGHT_SEMI", "RIGHT_ANTI"):
                parts = [text, f"{_JOINS[step.kind]} {parts[0]}{on}"]
            else:
                parts.append(f"{_JOINS[step.kind]} {text}{on}")
        return " FROM " + " ".join(parts)

    @staticmethod
    def column_list(src: b.BoundSource) -> str:
        if src.values is None:
            return ""
        return "(" + ", ".join(f"c{i}" for i in range(len(src.schema.columns))) + ")"

    def select(self, q: b.BoundSelect) -> str:
        items = ", ".join(f"{self.expr(e)} AS c{i}" for i, e in enumerate(q.items))
        sql = f"SELECT {'DISTINCT ' if q.distinct else ''}{items}{self.from_clause(q)}"
        if q.where is not None:
            sql += f" WHERE {self.expr(q.where)}"
        if q.group_by:
            sql += " GROUP BY " + ", ".join(self.expr(g) for g in q.group_by)
        if q.having is not None:
            sql += f" HAVING {self.expr(q.having)}"
        if q.order_by:
            keys = []
            for key, descending in q.order_by:
                text = f"c{key}" if isinstance(key, int) else self.expr(key)
                keys.append(f"{text} {'DESC NULLS LAST' if descending else 'ASC NULLS FIRST'}")
            sql += " ORDER BY " + ", ".join(keys)
        if q.fetch is not None:
            sql += f" LIMIT {q.fetch}"
        if q.offset is not None:
            sql += f" OFFSET {q.offset}"
        return sql

    def conform(self, sql: str, have: b.Schema, want: b.Schema) -> str:
        if [c.type.duckdb for c in have.columns] == [c.type.duckdb for c in want.columns]:
            return sql
        cols = ", ".join(
            f"CAST(c{i} AS {c.type.duckdb}) AS c{i}" for i, c in enumerate(want.columns)
        )
        return f"SELECT {cols} FROM ({sql})"

    def query(self, q: b.BoundQuery) -> str:
        if isinstance(q, b.BoundSelect):
            return self.select(q)
        if isinstance(q, b.BoundSetOp):
            left = self.conform(self.query(q.left), q.left.schema, q.schema)
            right = self.conform(self.query(q.right), q.right.schema, q.schema)
            word = f"{q.op} ALL" if q.all else q.op
            return f"(({left}) {word} ({right}))"
        raise TypeError(f"{type(q).__name__} is not a SQL query")
