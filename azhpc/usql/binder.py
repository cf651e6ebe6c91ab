"""The binder: resolves rowsets, columns, variables and types, and checks the script.

It walks the statements in order, keeping the scalar ``@variables`` (folded to values) and the
rowset ``@variables`` (each assignment gets a fresh relation name, so ``@r = SELECT ... FROM
@r`` reads the previous ``@r``), and produces a :class:`~azhpc.usql.bound.BoundScript`.
"""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal

from azhpc.usql import bound as b
from azhpc.usql import nodes as n
from azhpc.usql.bind_expr import ExprBinder, Scope, ScopeSource, children, contains_aggregate
from azhpc.usql.bind_options import extract_options, output_options
from azhpc.usql.bind_select import bind_select
from azhpc.usql.constants import NotConstant, fold
from azhpc.usql.errors import ErrorCode, Span, UsqlError
from azhpc.usql.filesets import parse_pattern
from azhpc.usql.types import (
    BOOL,
    DATETIME,
    DOUBLE,
    LONG,
    STRING,
    Kind,
    UType,
    common_type,
    implicitly_converts,
    parse_csharp_datetime,
)

__all__ = ["bind"]

_PYTHON_ASSEMBLIES = frozenset({"ExtPython", "master.ExtPython"})
_REDUCERS = frozenset({"Extension.Python.Reducer"})


def _python_value_type(value: object) -> UType:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return UType(Kind.INT) if -(2**31) <= value < 2**31 else LONG
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, Decimal):
        return UType(Kind.DECIMAL)
    if isinstance(value, _dt.datetime):
        return DATETIME
    if value is None:
        return UType(Kind.NULL)
    return STRING


class Binder:
    """Binds one parsed script; see :func:`bind`."""

    def __init__(self, script: n.Script, params: dict[str, object], now: _dt.datetime | None):
        self.script = script
        self.params = {k.lstrip("@"): v for k, v in params.items()}
        self.variables: dict[str, tuple[object, UType]] = {}
        self.literal_lines: dict[str, int] = {}
        self.exprs = ExprBinder(script.name, script.source, self.variables, now)
        self.rowsets: dict[str, tuple[str, b.Schema]] = {}
        self.assignments: list[tuple[str, str, b.BoundQuery, Span]] = []
        self.outputs: list[b.BoundOutput] = []
        self.python_referenced = False
        self.counter = 0

    def error(self, code: ErrorCode, message: str, span: Span | None) -> UsqlError:
        return self.exprs.error(code, message, span)

    # ------------------------------------------------------------------ statements
    def run(self) -> b.BoundScript:
        external = {
            s.name for s in self.script.statements if isinstance(s, n.Declare) and s.external
        }
        for name, value in self.params.items():
            if name not in external:
                self.variables[name] = (value, _python_value_type(value))
        for statement in self.script.statements:
            match statement:
                case n.Declare():
                    self.bind_declare(statement)
                case n.ReferenceAssembly():
                    self.bind_reference(statement)
                case n.Assign():
                    self.bind_assign(statement)
                case n.Output():
                    self.bind_output(statement)
        return b.BoundScript(
            self.script.name,
            self.script.source,
            tuple(self.assignments),
            tuple(self.outputs),
            dict(self.variables),
        )

    def bind_reference(self, statement: n.ReferenceAssembly) -> None:
        if statement.name in _PYTHON_ASSEMBLIES:
            self.python_referenced = True
            return
        raise self.error(
            ErrorCode.NOT_SUPPORTED,
            f"not supported: REFERENCE ASSEMBLY {statement.name} (only [ExtPython] is available)",
            statement.span,
        )

    def bind_declare(self, statement: n.Declare) -> None:
        name = statement.name
        if name in self.variables:
            where = "as a parameter" if name in self.params else "earlier"
            raise self.error(
                ErrorCode.VARIABLE_REDECLARED,
                f"the variable @{name} is already declared {where}",
                statement.span,
            )
        if name in self.rowsets:
            raise self.error(
                ErrorCode.VARIABLE_REDECLARED,
                f"@{name} is already a rowset variable",
                statement.span,
            )
        declared = self.exprs.resolve_type(statement.type) if statement.type else None
        if statement.external and name in self.params:
            value = self.params[name]
            utype = declared or self.constant(statement.value)[1]
            self.variables[name] = (self.convert_param(name, value, utype, statement.span), utype)
            return
        value, utype = self.constant(statement.value)
        if declared is not None:
            if not implicitly_converts(utype, declared):
                raise self.error(
                    ErrorCode.TYPE_MISMATCH,
                    f"cannot assign a {utype} value to @{name} of type {declared}",
                    statement.value.span,
                )
            value = self.coerce(value, declared)
            utype = declared
        if isinstance(statement.value, n.Literal) and isinstance(statement.value.value, str):
            self.literal_lines[name] = statement.value.span.line
        self.variables[name] = (value, utype)

    def constant(self, expr: n.Expr) -> tuple[object, UType]:
        bound = self.exprs.bind(expr, Scope(clause="a DECLARE value"))
        try:
            return fold(bound), bound.type
        except NotConstant as exc:
            raise self.error(
                ErrorCode.NOT_SUPPORTED,
                f"not supported: evaluating {exc.args[0]} at compile time",
                getattr(expr, "span", None),
            ) from None

    def constant_string(self, expr: n.Expr, what: str) -> str:
        value, utype = self.constant(expr)
        if utype.kind is not Kind.STRING or value is None:
            raise self.error(
                ErrorCode.TYPE_MISMATCH, f"{what} must be a string, not {utype}", expr.span
            )
        return str(value)

    @staticmethod
    def coerce(value: object, utype: UType) -> object:
        if value is None:
            return None
        if utype.is_floating:
            return float(value)  # type: ignore[arg-type]
        if utype.kind is Kind.DECIMAL:
            return Decimal(str(value))
        return value

    def convert_param(self, name: str, value: object, utype: UType, span: Span) -> object:
        if isinstance(value, str) and utype.kind is not Kind.STRING:
            try:
                if utype.is_integral:
                    return int(value)
                if utype.is_floating:
                    return float(value)
                if utype.kind is Kind.DECIMAL:
                    return Decimal(value)
                if utype.kind is Kind.BOOL and value.lower() in ("true", "false"):
                    return value.lower() == "true"
                if utype.kind is Kind.DATETIME:
                    return parse_csharp_datetime(value)
            except ValueError:
                pass
        elif implicitly_converts(_python_value_type(value), utype):
            return self.coerce(value, utype)
        raise self.error(
            ErrorCode.INVALID_PARAMETER,
            f"parameter @{name}={value!r} is not a valid {utype}",
            span,
        )

    def bind_assign(self, statement: n.Assign) -> None:
        if statement.name in self.variables:
            raise self.error(
                ErrorCode.VARIABLE_REDECLARED,
                f"@{statement.name} is already a scalar variable",
                statement.span,
            )
        query = self.bind_query(statement.query)
        self.counter += 1
        safe = re.sub(r"\W", "_", statement.name)
        relation = f"rs{self.counter}_{safe}"
        self.rowsets[statement.name] = (relation, query.schema)
        self.assignments.append((relation, statement.name, query, statement.span))

    def lookup_rowset(self, ref: n.RowsetSource) -> tuple[str, b.Schema]:
        if ref.name in self.rowsets:
            return self.rowsets[ref.name]
        known = ", ".join(f"@{k}" for k in self.rowsets) or "none"
        hint = " (it is a scalar variable)" if ref.name in self.variables else ""
        raise self.error(
            ErrorCode.UNKNOWN_ROWSET,
            f"rowset variable @{ref.name} is not defined{hint}; defined rowsets: {known}",
            ref.span,
        )

    def bind_output(self, statement: n.Output) -> None:
        relation, schema = self.lookup_rowset(statement.rowset)
        path = self.constant_string(statement.path, "an OUTPUT path")
        for column in schema.columns:
            if column.type.kind is Kind.ARRAY:
                raise self.error(
                    ErrorCode.TYPE_MISMATCH,
                    f"column '{column.name}' of type {column.type} cannot be written by the "
                    "built-in outputters",
                    statement.rowset.span,
                )
        order = tuple(
            (self.column_index(item.expr, schema, "ORDER BY"), item.descending)
            for item in statement.order_by
        )
        options = output_options(statement.using, self)
        self.outputs.append(b.BoundOutput(relation, schema, path, order, options, statement.span))

    def column_index(self, expr: n.Expr, schema: b.Schema, clause: str) -> int:
        if not isinstance(expr, n.Name):
            raise self.error(
                ErrorCode.NOT_SUPPORTED,
                f"not supported: expressions in {clause} here (name a column)",
                getattr(expr, "span", None),
            )
        index = schema.find(expr.name)
        if index is None:
            raise self.error(
                ErrorCode.UNKNOWN_COLUMN,
                f"column '{expr.name}' not found (available columns: {', '.join(schema.names)})",
                expr.span,
            )
        return index

    # ------------------------------------------------------------------ queries
    def bind_query(self, query: n.Query) -> b.BoundQuery:
        match query:
            case n.Extract():
                return self.bind_extract(query)
            case n.Select():
                return self.bind_select(query)
            case n.SetOp():
                return self.bind_setop(query)
            case n.Reduce():
                return self.bind_reduce(query)
        raise self.error(ErrorCode.NOT_SUPPORTED, "not supported: this query", None)

    def schema_from(self, defs: tuple[n.ColumnDef, ...], what: str) -> b.Schema:
        columns: list[b.Column] = []
        for definition in defs:
            if any(c.name == definition.name for c in columns):
                raise self.error(
                    ErrorCode.DUPLICATE_COLUMN,
                    f"column '{definition.name}' appears twice in the {what} schema",
                    definition.span,
                )
            columns.append(b.Column(definition.name, self.exprs.resolve_type(definition.type)))
        return b.Schema(tuple(columns))

    def bind_extract(self, query: n.Extract) -> b.BoundExtract:
        schema = self.schema_from(query.columns, "EXTRACT")
        virtual: set[str] = set()
        files = []
        for path_expr in query.paths:
            text = self.constant_string(path_expr, "an EXTRACT path")
            try:
                pattern = parse_pattern(text)
            except ValueError as exc:
                raise self.error(ErrorCode.INVALID_FILESET, str(exc), path_expr.span) from None
            for column in pattern.columns:
                index = schema.find(column)
                if index is None:
                    raise self.error(
                        ErrorCode.INVALID_FILESET,
                        f"file set pattern names '{{{column}}}', which is not a column of the "
                        "EXTRACT schema",
                        path_expr.span,
                    )
                ctype = schema.columns[index].type
                wanted = Kind.DATETIME if column in pattern.date_columns else None
                if wanted and ctype.kind is not wanted:
                    raise self.error(
                        ErrorCode.TYPE_MISMATCH,
                        f"virtual column '{column}' takes date parts, so it must be DateTime",
                        path_expr.span,
                    )
            virtual.update(pattern.columns)
            files.append(b.FileSet(text, pattern.columns))
        for column in schema.columns:
            if column.type.kind is Kind.ARRAY:
                raise self.error(
                    ErrorCode.TYPE_MISMATCH,
                    f"column '{column.name}': the built-in extractors cannot read {column.type}",
                    query.span,
                )
        data = tuple(i for i, c in enumerate(schema.columns) if c.name not in virtual)
        options = extract_options(query.using, self)
        return b.BoundExtract(schema, tuple(files), data, options, query.span)

    def bind_setop(self, query: n.SetOp) -> b.BoundSetOp:
        left = self.bind_query(query.left)
        right = self.bind_query(query.right)
        lcols, rcols = left.schema.columns, right.schema.columns
        if len(lcols) != len(rcols):
            raise self.error(
                ErrorCode.SCHEMA_MISMATCH,
                f"{query.op} needs the same number of columns on both sides: "
                f"{left.schema} vs {right.schema}",
                query.span,
            )
        columns = []
        for lc, rc in zip(lcols, rcols, strict=True):
            utype = common_type(lc.type, rc.type)
            if utype is None:
                raise self.error(
                    ErrorCode.SCHEMA_MISMATCH,
                    f"{query.op}: column '{lc.name}' is {lc.type} on the left and {rc.type} "
                    "on the right",
                    query.span,
                )
            columns.append(b.Column(lc.name, utype))
        return b.BoundSetOp(b.Schema(tuple(columns)), query.op, query.all, left, right)

    def bind_reduce(self, query: n.Reduce) -> b.BoundReduce:
        relation, schema = self.lookup_rowset(query.input)
        using = query.using
        if using.name not in _REDUCERS:
            raise self.error(
                ErrorCode.NOT_SUPPORTED,
                f"not supported: reducer {using.name} (only Extension.Python.Reducer)",
                using.span,
            )
        if not self.python_referenced:
            raise self.error(
                ErrorCode.UNKNOWN_TYPE,
                "Extension.Python.Reducer needs REFERENCE ASSEMBLY [ExtPython]; before it",
                using.span,
            )
        if len(using.args) != 1 or using.args[0].name not in (None, "pyScript"):
            raise self.error(
                ErrorCode.INVALID_UDO_ARGUMENT,
                "Extension.Python.Reducer takes one argument, pyScript: the Python source",
                using.span,
            )
        arg = using.args[0].value
        script = self.constant_string(arg, "pyScript")
        line = 0
        if isinstance(arg, n.Variable):
            line = self.literal_lines.get(arg.name, 0)
        elif isinstance(arg, n.Literal):
            line = arg.span.line
        keys = None
        if query.keys is not None:
            keys = tuple(self.column_index(k, schema, "ON") for k in query.keys)
        presort = tuple(
            (self.column_index(item.expr, schema, "PRESORT"), item.descending)
            for item in query.presort
        )
        produce = self.schema_from(query.produce, "PRODUCE")
        for name in query.readonly + query.required:
            if name.name == "*":
                continue
            self.column_index(name, schema, "READONLY/REQUIRED")
        for name in query.readonly:
            if name.name != "*" and produce.find(name.name) is None:
                raise self.error(
                    ErrorCode.UNKNOWN_COLUMN,
                    f"READONLY column '{name.name}' must also be in PRODUCE",
                    name.span,
                )
        return b.BoundReduce(
            produce,
            relation,
            schema,
            keys,
            presort,
            script,
            self.script.name if line else "<pyScript>",
            line,
            query.span,
        )

    # ------------------------------------------------------------------ SELECT
    def bind_source(self, source: n.Source, index: int) -> b.BoundSource:
        match source:
            case n.RowsetSource():
                relation, schema = self.lookup_rowset(source)
                return b.BoundSource(source.alias or source.name, schema, relation=relation)
            case n.ValuesSource():
                return self.bind_values(source)
            case n.SubquerySource():
                inner = self.bind_query(source.query)
                return b.BoundSource(source.alias, inner.schema, query=inner)
        raise self.error(ErrorCode.NOT_SUPPORTED, "not supported: this source", None)

    def bind_values(self, source: n.ValuesSource) -> b.BoundSource:
        width = len(source.columns)
        scope = Scope(clause="VALUES")
        rows = []
        types: list[UType | None] = [None] * width
        for row in source.rows:
            if len(row) != width:
                raise self.error(
                    ErrorCode.SCHEMA_MISMATCH,
                    f"a VALUES row has {len(row)} values but {source.alias} has {width} columns",
                    row[0].span if row else source.span,
                )
            bound_row = tuple(self.exprs.bind(e, scope) for e in row)
            for i, (expr, value) in enumerate(zip(row, bound_row, strict=True)):
                previous = types[i]
                merged = value.type if previous is None else common_type(previous, value.type)
                if merged is None:
                    raise self.error(
                        ErrorCode.TYPE_MISMATCH,
                        f"column '{source.columns[i]}' is {previous} in one row and "
                        f"{value.type} in another",
                        expr.span,
                    )
                types[i] = merged
            rows.append(bound_row)
        columns = []
        for name, utype in zip(source.columns, types, strict=True):
            if utype is None or utype.kind is Kind.NULL:
                raise self.error(
                    ErrorCode.TYPE_MISMATCH,
                    f"column '{name}' is only null; cast it, e.g. (string)null",
                    source.span,
                )
            if any(c.name == name for c in columns):
                raise self.error(
                    ErrorCode.DUPLICATE_COLUMN, f"column '{name}' appears twice", source.span
                )
            columns.append(b.Column(name, utype))
        return b.BoundSource(source.alias, b.Schema(tuple(columns)), values=tuple(rows))

    def bind_select(self, query: n.Select) -> b.BoundSelect:

        return bind_select(self, query)


def nullable_schema(schema: b.Schema) -> b.Schema:
    """The schema of the outer side of an outer join: every column nullable."""
    return b.Schema(tuple(b.Column(c.name, c.type.with_nullable(True)) for c in schema.columns))


def bind(script: n.Script, params: dict[str, object] | None = None, now=None) -> b.BoundScript:
    """Bind a parsed script.

    Parameters
    ----------
    script : Script
        From :func:`azhpc.usql.parser.parse`.
    params : dict, optional
        Values for ``DECLARE EXTERNAL`` variables (other names are declared before the script,
        as ADLA's job parameters were), keyed by name with or without ``@``.
    now : datetime, optional
        The value of ``DateTime.Now`` (default: the time of binding).

    Returns
    -------
    BoundScript

    Raises
    ------
    UsqlError
        For unknown rowsets, columns and variables, type errors and unsupported constructs.
    """
    return Binder(script, params or {}, now).run()


__all__ += ["ScopeSource", "children", "contains_aggregate", "nullable_schema"]
