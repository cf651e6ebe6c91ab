"""Binding C# expressions: resolve columns and ``@variables``, type every node the C# way.

The result is a tree of :mod:`azhpc.usql.bound` nodes; anything C# would reject (``int ==
string``, ``string < string``, ``&&`` on ``bool?``) is an ``E_CSC_USER_TYPEMISMATCH`` error, and a
C# member azhpc does not translate is ``E_AZHPC_USQL_NOTSUPPORTED``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from azhpc.usql import bound as b
from azhpc.usql import nodes as n
from azhpc.usql.bind_members import MemberBinder
from azhpc.usql.errors import ErrorCode, Span, UsqlError
from azhpc.usql.types import (
    BOOL,
    DATETIME,
    DOUBLE,
    INT,
    LONG,
    NULL,
    STRING,
    Kind,
    UType,
    common_type,
    implicitly_converts,
    promote_numeric,
    type_from_name,
)

__all__ = ["ExprBinder", "Scope", "ScopeSource"]

_LITERAL_TYPES = {
    n.LiteralKind.STRING: STRING,
    n.LiteralKind.CHAR: UType(Kind.CHAR),
    n.LiteralKind.INT: INT,
    n.LiteralKind.LONG: LONG,
    n.LiteralKind.FLOAT: UType(Kind.FLOAT),
    n.LiteralKind.DOUBLE: DOUBLE,
    n.LiteralKind.DECIMAL: UType(Kind.DECIMAL),
    n.LiteralKind.BOOL: BOOL,
    n.LiteralKind.NULL: NULL,
}
_STATIC_TYPES = frozenset(
    {"string", "String", "System.String", "DateTime", "System.DateTime", "Math", "System.Math"}
    | {"Convert", "System.Convert", "SqlArray", "SQL.ARRAY", "Guid", "int", "Int32", "long"}
    | {"Int64", "double", "Double", "float", "Single", "decimal", "Decimal", "bool", "Boolean"}
)
_DATE_PARTS = {
    "Year": "year",
    "Month": "month",
    "Day": "day",
    "Hour": "hour",
    "Minute": "minute",
    "Second": "second",
    "Millisecond": "millisecond",
    "DayOfYear": "dayofyear",
}
_LIMITS = {
    ("int", "MaxValue"): (2**31 - 1, INT),
    ("int", "MinValue"): (-(2**31), INT),
    ("Int32", "MaxValue"): (2**31 - 1, INT),
    ("Int32", "MinValue"): (-(2**31), INT),
    ("long", "MaxValue"): (2**63 - 1, LONG),
    ("long", "MinValue"): (-(2**63), LONG),
    ("Int64", "MaxValue"): (2**63 - 1, LONG),
    ("Int64", "MinValue"): (-(2**63), LONG),
}


@dataclass
class ScopeSource:
    """A source visible in an expression: its alias (may be ``None``) and schema."""

    alias: str | None
    schema: b.Schema
    index: int
    visible: bool = True


@dataclass
class Scope:
    """What names mean inside one expression."""

    sources: list[ScopeSource] = field(default_factory=list)
    allow_aggregates: bool = False
    clause: str = "expression"


class ExprBinder(MemberBinder):
    """Binds expressions for one script; owns the variables and the error factory."""

    def __init__(
        self,
        script: str,
        source: str,
        variables: dict[str, tuple[object, UType]],
        now: _dt.datetime | None = None,
    ) -> None:
        self.script = script
        self.source = source
        self.variables = variables
        self.now = now or _dt.datetime.now()

    # ------------------------------------------------------------------ errors
    def error(self, code: ErrorCode, message: str, span: Span | None) -> UsqlError:
        return UsqlError(code, message, script=self.script, span=span, source=self.source)

    def mismatch(self, message: str, span: Span | None) -> UsqlError:
        return self.error(ErrorCode.TYPE_MISMATCH, message, span)

    def unsupported(self, what: str, span: Span | None) -> UsqlError:
        return self.error(ErrorCode.NOT_SUPPORTED, f"not supported: {what}", span)

    def resolve_type(self, ref: n.TypeRef) -> UType:
        args = tuple(self.resolve_type(a) for a in ref.args)
        result = type_from_name(ref.name, ref.nullable, args, ref.array)
        if isinstance(result, str):
            raise self.error(ErrorCode.UNKNOWN_TYPE, result, ref.span)
        return result

    # ------------------------------------------------------------------ entry point
    def bind(self, expr: n.Expr, scope: Scope) -> b.BoundExpr:
        match expr:
            case n.Literal():
                return b.BLiteral(expr.value, _LITERAL_TYPES[expr.kind])
            case n.Variable():
                if expr.name not in self.variables:
                    raise self.error(
                        ErrorCode.UNKNOWN_VARIABLE,
                        f"the scalar variable @{expr.name} is not declared",
                        expr.span,
                    )
                value, utype = self.variables[expr.name]
                return b.BLiteral(value, utype)
            case n.Name():
                return self.bind_name(expr, scope)
            case n.Member():
                return self.bind_member(expr, scope)
            case n.Call():
                return self.bind_call(expr, scope)
            case n.Binary():
                return self.bind_binary(expr, scope)
            case n.Unary():
                return self.bind_unary(expr, scope)
            case n.Conditional():
                return self.bind_conditional(expr, scope)
            case n.Cast():
                return self.bind_cast(expr, scope)
            case n.IsNull():
                return b.BIsNull(self.bind(expr.operand, scope), expr.negated)
            case n.InList():
                operand = self.bind(expr.operand, scope)
                items = tuple(self.bind(i, scope) for i in expr.items)
                for item in items:
                    self.check_equality(operand.type, item.type, "IN", expr.span)
                return b.BInList(operand, items, expr.negated)
            case n.Between():
                operand = self.bind(expr.operand, scope)
                low, high = self.bind(expr.low, scope), self.bind(expr.high, scope)
                for bound_ in (low, high):
                    self.check_ordering(operand.type, bound_.type, "BETWEEN", expr.span)
                return b.BBetween(operand, low, high, expr.negated)
            case n.Like():
                operand = self.bind(expr.operand, scope)
                pattern = self.bind(expr.pattern, scope)
                if operand.type.kind is not Kind.STRING or pattern.type.kind not in (
                    Kind.STRING,
                    Kind.NULL,
                ):
                    raise self.mismatch("LIKE needs string operands", expr.span)
                return b.BLike(operand, pattern, expr.negated)
            case n.Aggregate():
                return self.bind_aggregate(expr, scope)
            case n.Index():
                return self.bind_index(expr, scope)
            case n.New():
                return self.bind_new(expr, scope)
        raise self.unsupported(type(expr).__name__, getattr(expr, "span", None))

    # ------------------------------------------------------------------ names
    def find_column(self, name: str, scope: Scope, span: Span | None) -> b.BColumn | None:
        hits = [
            (src, idx)
            for src in scope.sources
            if src.visible and (idx := src.schema.find(name)) is not None
        ]
        if len(hits) > 1:
            aliases = ", ".join(str(src.alias) for src, _ in hits)
            raise self.error(
                ErrorCode.AMBIGUOUS_COLUMN,
                f"column '{name}' is ambiguous: it is in {aliases}; qualify it with an alias",
                span,
            )
        if not hits:
            return None
        src, idx = hits[0]
        return b.BColumn(src.index, idx, src.schema.columns[idx].type, name)

    def source_by_alias(self, alias: str, scope: Scope) -> ScopeSource | None:
        for src in scope.sources:
            if src.alias == alias:
                return src
        return None

    def bind_name(self, expr: n.Name, scope: Scope) -> b.BoundExpr:
        column = self.find_column(expr.name, scope, expr.span)
        if column is not None:
            return column
        available = sorted({c for s in scope.sources if s.visible for c in s.schema.names})
        listing = ", ".join(available) if available else "none"
        raise self.error(
            ErrorCode.UNKNOWN_COLUMN,
            f"column '{expr.name}' not found (available columns: {listing})",
            expr.span,
        )

    def static_name(self, expr: n.Expr, scope: Scope) -> str | None:
        """``DateTime``/``string``/``Math``... when ``expr`` names a type, not a column."""
        if isinstance(expr, n.Name):
            if self.find_column(expr.name, scope, expr.span) is not None:
                return None
            if self.source_by_alias(expr.name, scope) is not None:
                return None
            return expr.name
        if isinstance(expr, n.Member):
            head = self.static_name(expr.target, scope)
            return f"{head}.{expr.name}" if head else None
        return None

    def bind_member(self, expr: n.Member, scope: Scope) -> b.BoundExpr:
        target = expr.target
        if isinstance(target, n.Name):
            src = self.source_by_alias(target.name, scope)
            if src is not None and self.find_column(target.name, scope, target.span) is None:
                idx = src.schema.find(expr.name)
                if idx is None:
                    raise self.error(
                        ErrorCode.UNKNOWN_COLUMN,
                        f"column '{expr.name}' not found in '{target.name}' "
                        f"(its columns: {', '.join(src.schema.names)})",
                        expr.span,
                    )
                return b.BColumn(src.index, idx, src.schema.columns[idx].type, expr.name)
        static = self.static_name(target, scope)
        if static is not None:
            return self.bind_static_property(static, expr)
        return self.bind_property(self.bind(target, scope), expr.name, expr.span)

    def bind_static_property(self, static: str, expr: n.Member) -> b.BoundExpr:
        name = expr.name
        base = static.removeprefix("System.")
        if base == "DateTime" and name in ("Now", "UtcNow", "Today"):
            now = self.now
            if name == "UtcNow":
                now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
            if name == "Today":
                now = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return b.BLiteral(now, DATETIME)
        if base == "DateTime" and name in ("MinValue", "MaxValue"):
            value = _dt.datetime.min if name == "MinValue" else _dt.datetime.max
            return b.BLiteral(value, DATETIME)
        if base in ("string", "String") and name == "Empty":
            return b.BLiteral("", STRING)
        if (base, name) in _LIMITS:
            value, utype = _LIMITS[(base, name)]
            return b.BLiteral(value, utype)
        if static in _STATIC_TYPES or base in _STATIC_TYPES:
            raise self.unsupported(f"{static}.{name}", expr.span)
        raise self.error(
            ErrorCode.UNKNOWN_COLUMN,
            f"'{static}' is not a column, an alias or a known type",
            _first_span(expr),
        )

    def bind_property(self, target: b.BoundExpr, name: str, span: Span | None) -> b.BoundExpr:
        ttype = target.type
        kind = ttype.kind
        if kind is Kind.STRING and name == "Length":
            return b.BCall(b.Builtin.LENGTH, (target,), INT, span=span)
        if kind is Kind.DATETIME:
            if name in _DATE_PARTS:
                return self.lift(b.Builtin.DT_PART, (target,), INT, ttype, _DATE_PARTS[name], span)
            if name == "Date":
                return self.lift(b.Builtin.DT_DATE, (target,), DATETIME, ttype, "", span)
        if kind is Kind.ARRAY and name in ("Count", "Length"):
            return b.BCall(b.Builtin.ARRAY_COUNT, (target,), INT, span=span)
        if ttype.nullable and not ttype.is_reference:
            if name == "HasValue":
                return b.BCall(b.Builtin.HAS_VALUE, (target,), BOOL, span=span)
            if name == "Value":
                return b.BCall(b.Builtin.VALUE, (target,), ttype.with_nullable(False), span=span)
        raise self.unsupported(f"member '{name}' of {ttype}", span)

    def lift(self, func, args, result: UType, source: UType, detail: str, span) -> b.BCall:
        """A call on a value type whose result is nullable if the receiver is (``x?.Year``)."""
        if source.nullable:
            raise self.error(
                ErrorCode.UNKNOWN_MEMBER,
                f"{source} has no member like that; use .Value first",
                span,
            )
        return b.BCall(func, args, result, detail, span)

    # ------------------------------------------------------------------ new, index
    def bind_new(self, expr: n.New, scope: Scope) -> b.BoundExpr:
        args = tuple(self.bind(a, scope) for a in expr.args)
        name = expr.type.name
        if name in ("DateTime", "System.DateTime") and len(args) in (3, 6):
            for arg in args:
                self.expect(arg, Kind.INT, "new DateTime", expr.span)
            return b.BCall(b.Builtin.NEW_DATETIME, args, DATETIME, span=expr.span)
        if name in ("SQL.ARRAY", "SqlArray") and len(args) == 1 and expr.type.args:
            element = self.resolve_type(expr.type.args[0])
            return self.make_array(args[0], element, expr.span)
        if name in ("Guid", "System.Guid") and len(args) == 1:
            self.expect(args[0], Kind.STRING, "new Guid", expr.span)
            return b.BCall(b.Builtin.NEW_GUID, args, UType(Kind.GUID), span=expr.span)
        raise self.unsupported(f"new {expr.type} (C# objects)", expr.span)

    def make_array(self, arg: b.BoundExpr, element: UType | None, span) -> b.BoundExpr:
        if arg.type.kind is not Kind.ARRAY:
            raise self.mismatch(f"SQL.ARRAY is built from an array, not {arg.type}", span)
        if element is not None and arg.type.element != element:
            raise self.mismatch(f"cannot build SQL.ARRAY<{element}> from {arg.type}", span)
        return b.BCall(b.Builtin.ARRAY_OF, (arg,), arg.type, span=span)

    def bind_index(self, expr: n.Index, scope: Scope) -> b.BoundExpr:
        target = self.bind(expr.target, scope)
        index = self.bind(expr.index, scope)
        if target.type.kind is not Kind.ARRAY:
            raise self.unsupported(f"indexing a {target.type}", expr.span)
        self.expect(index, (Kind.INT, Kind.LONG), "an array index", expr.span)
        assert target.type.element is not None
        return b.BCall(b.Builtin.ARRAY_INDEX, (target, index), target.type.element, span=expr.span)

    # ------------------------------------------------------------------ operators
    def bind_binary(self, expr: n.Binary, scope: Scope) -> b.BoundExpr:
        left = self.bind(expr.left, scope)
        right = self.bind(expr.right, scope)
        lt, rt = left.type, right.type
        op = expr.op
        span = expr.span
        if op == "+" and (Kind.STRING in (lt.kind, rt.kind)):
            return b.BBinary(b.BinOp.CONCAT, left, right, STRING, span)
        if op in ("+", "-", "*", "/", "%"):
            if Kind.CHAR in (lt.kind, rt.kind):
                raise self.unsupported("arithmetic on char values", span)
            result = promote_numeric(lt, rt)
            if result is None:
                raise self.mismatch(f"operator '{op}' cannot be applied to {lt} and {rt}", span)
            binop = {
                "+": b.BinOp.ADD,
                "-": b.BinOp.SUB,
                "*": b.BinOp.MUL,
                "%": b.BinOp.MOD,
            }.get(op)
            if binop is None:
                binop = b.BinOp.INT_DIV if result.is_integral else b.BinOp.DIV
            return b.BBinary(binop, left, right, result, span)
        if op in ("==", "!="):
            self.check_equality(lt, rt, op, span)
            return b.BBinary(b.BinOp.EQ if op == "==" else b.BinOp.NE, left, right, BOOL, span)
        if op in ("<", "<=", ">", ">="):
            self.check_ordering(lt, rt, op, span)
            return b.BBinary(b.BinOp(op), left, right, BOOL, span)
        if op in ("&&", "||"):
            if lt != BOOL or rt != BOOL:
                raise self.mismatch(f"operator '{op}' needs bool operands, got {lt} and {rt}", span)
            return b.BBinary(b.BinOp.AND if op == "&&" else b.BinOp.OR, left, right, BOOL, span)
        if op in ("&", "|", "^"):
            return self.bind_bitwise(op, left, right, span)
        if op == "??":
            if not lt.nullable:
                raise self.mismatch(f"operator '??' needs a nullable left operand, got {lt}", span)
            result = common_type(lt.with_nullable(False), rt) if lt.kind is not Kind.NULL else rt
            if result is None:
                raise self.mismatch(f"operator '??' cannot be applied to {lt} and {rt}", span)
            return b.BBinary(b.BinOp.COALESCE, left, right, result.with_nullable(rt.nullable), span)
        raise self.unsupported(f"operator '{op}'", span)

    def bind_bitwise(self, op: str, left: b.BoundExpr, right: b.BoundExpr, span) -> b.BoundExpr:
        lt, rt = left.type, right.type
        binop = {"&": b.BinOp.BIT_AND, "|": b.BinOp.BIT_OR, "^": b.BinOp.BIT_XOR}[op]
        if lt == BOOL and rt == BOOL:
            if op == "^":
                return b.BBinary(b.BinOp.NE, left, right, BOOL, span)
            return b.BBinary(b.BinOp.AND if op == "&" else b.BinOp.OR, left, right, BOOL, span)
        result = promote_numeric(lt, rt)
        if result is None or not result.is_integral:
            raise self.mismatch(f"operator '{op}' cannot be applied to {lt} and {rt}", span)
        return b.BBinary(binop, left, right, result, span)

    def check_equality(self, lt: UType, rt: UType, op: str, span) -> None:
        if Kind.NULL in (lt.kind, rt.kind):
            other = rt if lt.kind is Kind.NULL else lt
            if other.nullable or other.kind is Kind.NULL:
                return
        else:
            same = lt.kind is rt.kind and lt.kind is not Kind.ARRAY
            if same or promote_numeric(lt, rt) is not None:
                return
        raise self.mismatch(f"operator '{op}' cannot be applied to {lt} and {rt}", span)

    def check_ordering(self, lt: UType, rt: UType, op: str, span) -> None:
        if promote_numeric(lt, rt) is not None:
            return
        if lt.kind is rt.kind and lt.kind in (Kind.DATETIME, Kind.CHAR):
            return
        raise self.mismatch(f"operator '{op}' cannot be applied to {lt} and {rt}", span)

    def bind_unary(self, expr: n.Unary, scope: Scope) -> b.BoundExpr:
        operand = self.bind(expr.operand, scope)
        otype = operand.type
        if expr.op == "!":
            if otype != BOOL:
                raise self.mismatch(f"operator '!' needs a bool operand, got {otype}", expr.span)
            return b.BUnary("!", operand, BOOL)
        if expr.op == "~" and otype.is_integral:
            return b.BUnary("~", operand, promote_numeric(otype, INT) or otype)
        if expr.op in ("-", "+") and otype.is_numeric:
            result = promote_numeric(otype, INT) if otype.is_integral else otype
            return b.BUnary(expr.op, operand, result or otype)
        raise self.mismatch(f"operator '{expr.op}' cannot be applied to {otype}", expr.span)

    def bind_conditional(self, expr: n.Conditional, scope: Scope) -> b.BoundExpr:
        cond = self.bind(expr.cond, scope)
        if cond.type != BOOL:
            raise self.mismatch(f"the condition of ?: must be bool, not {cond.type}", expr.span)
        then = self.bind(expr.then, scope)
        otherwise = self.bind(expr.otherwise, scope)
        result = common_type(then.type, otherwise.type)
        if result is None or result.kind is Kind.NULL:
            raise self.mismatch(
                f"no implicit conversion between {then.type} and {otherwise.type} in ?:",
                expr.span,
            )
        return b.BConditional(cond, then, otherwise, result)

    def bind_cast(self, expr: n.Cast, scope: Scope) -> b.BoundExpr:
        target = self.resolve_type(expr.type)
        operand = self.bind(expr.operand, scope)
        source = operand.type
        ok = (
            (source.kind is Kind.NULL and target.nullable)
            or (source.kind is target.kind and source.element == target.element)
            or (
                (source.is_numeric or source.kind is Kind.CHAR)
                and (target.is_numeric or target.kind is Kind.CHAR)
            )
        )
        if not ok:
            raise self.mismatch(f"cannot convert type {source} to {target}", expr.span)
        return b.BCast(operand, target, expr.span)

    # ------------------------------------------------------------------ aggregates
    def bind_aggregate(self, expr: n.Aggregate, scope: Scope) -> b.BoundExpr:
        if not scope.allow_aggregates:
            raise self.error(
                ErrorCode.AGGREGATE_MISPLACED,
                f"aggregate {expr.name} is not allowed in {scope.clause}",
                expr.span,
            )
        inner = Scope(scope.sources, False, f"the argument of {expr.name}")
        arg = self.bind(expr.arg, inner) if expr.arg is not None else None
        name = expr.name
        if name == "COUNT":
            return b.BAggregate(name, arg, expr.distinct, LONG)
        assert arg is not None
        atype = arg.type
        if name in ("SUM", "AVG"):
            if not atype.is_numeric:
                raise self.mismatch(f"{name} needs a numeric argument, not {atype}", expr.span)
            if atype.kind is Kind.DECIMAL:
                result = atype
            elif name == "AVG" or atype.is_floating:
                result = DOUBLE.with_nullable(atype.nullable)
            else:
                result = LONG.with_nullable(atype.nullable)
            return b.BAggregate(name, arg, expr.distinct, result)
        if name in ("MIN", "MAX", "ANY_VALUE"):
            if atype.kind in (Kind.ARRAY, Kind.NULL, Kind.BYTES):
                raise self.mismatch(f"{name} cannot be applied to {atype}", expr.span)
            return b.BAggregate(name, arg, expr.distinct, atype)
        if name == "ARRAY_AGG":
            if atype.kind in (Kind.ARRAY, Kind.NULL):
                raise self.mismatch(f"ARRAY_AGG cannot be applied to {atype}", expr.span)
            return b.BAggregate(name, arg, expr.distinct, UType(Kind.ARRAY, True, atype))
        raise self.unsupported(f"aggregate {name}", expr.span)


def _first_span(expr: n.Expr) -> Span | None:
    while isinstance(expr, n.Member):
        expr = expr.target
    return getattr(expr, "span", None)


def contains_aggregate(expr: b.BoundExpr) -> bool:
    """Whether a bound expression has an aggregate anywhere inside it."""
    if isinstance(expr, b.BAggregate):
        return True
    return any(contains_aggregate(child) for child in children(expr))


def children(expr: b.BoundExpr) -> tuple[b.BoundExpr, ...]:
    """The direct sub-expressions of a bound expression."""
    match expr:
        case b.BUnary():
            return (expr.operand,)
        case b.BBinary():
            return (expr.left, expr.right)
        case b.BConditional():
            return (expr.cond, expr.then, expr.otherwise)
        case b.BIsNull() | b.BCast():
            return (expr.operand,)
        case b.BInList():
            return (expr.operand, *expr.items)
        case b.BBetween():
            return (expr.operand, expr.low, expr.high)
        case b.BLike():
            return (expr.operand, expr.pattern)
        case b.BCall():
            return expr.args
        case b.BAggregate():
            return (expr.arg,) if expr.arg is not None else ()
    return ()


def implicit(source: UType, target: UType) -> bool:
    """Re-export of :func:`azhpc.usql.types.implicitly_converts` for the binder."""
    return implicitly_converts(source, target)
