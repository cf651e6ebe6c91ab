"""Binding calls to C# members: string and DateTime methods, ``Math``, ``Convert``, parsing.

Each supported member maps to a :class:`~azhpc.usql.bound.Builtin`; any other member is an
``E_AZHPC_USQL_NOTSUPPORTED`` error naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azhpc.usql import bound as b
from azhpc.usql import nodes as n
from azhpc.usql.types import BOOL, DATETIME, DOUBLE, INT, STRING, Kind, UType, promote_numeric

if TYPE_CHECKING:
    from azhpc.usql.bind_expr import Scope

__all__ = ["MemberBinder"]

_DATE_ADDS = {
    "AddDays": "day",
    "AddHours": "hour",
    "AddMinutes": "minute",
    "AddSeconds": "second",
    "AddMilliseconds": "millisecond",
    "AddMonths": "month",
    "AddYears": "year",
}

_STRING_UNARY = {
    "ToUpper": b.Builtin.UPPER,
    "ToUpperInvariant": b.Builtin.UPPER,
    "ToLower": b.Builtin.LOWER,
    "ToLowerInvariant": b.Builtin.LOWER,
}

_STRING_PREDICATES = {
    "Contains": b.Builtin.CONTAINS,
    "StartsWith": b.Builtin.STARTS_WITH,
    "EndsWith": b.Builtin.ENDS_WITH,
    "Equals": b.Builtin.STRING_EQUALS,
}

_TRIMS = {"Trim": b.Builtin.TRIM, "TrimStart": b.Builtin.TRIM_START, "TrimEnd": b.Builtin.TRIM_END}

_PARSE_TARGETS = {
    "int": Kind.INT,
    "Int32": Kind.INT,
    "long": Kind.LONG,
    "Int64": Kind.LONG,
    "double": Kind.DOUBLE,
    "Double": Kind.DOUBLE,
    "float": Kind.FLOAT,
    "Single": Kind.FLOAT,
    "decimal": Kind.DECIMAL,
    "Decimal": Kind.DECIMAL,
    "bool": Kind.BOOL,
    "Boolean": Kind.BOOL,
}

_CONVERT_TARGETS = {
    "ToInt32": Kind.INT,
    "ToInt64": Kind.LONG,
    "ToDouble": Kind.DOUBLE,
    "ToDecimal": Kind.DECIMAL,
    "ToBoolean": Kind.BOOL,
}


class MemberBinder:
    """Method binding for :class:`~azhpc.usql.bind_expr.ExprBinder`, which supplies ``bind``,
    ``static_name``, ``make_array``, ``mismatch`` and ``unsupported``."""

    # ------------------------------------------------------------------ calls
    def bind_call(self, expr: n.Call, scope: Scope) -> b.BoundExpr:
        target = expr.target
        if not isinstance(target, n.Member):
            name = target.name if isinstance(target, n.Name) else "expression"
            raise self.unsupported(f"calling '{name}' (C# functions from code-behind)", expr.span)
        args = tuple(self.bind(a, scope) for a in expr.args)
        static = self.static_name(target.target, scope)
        if static is not None:
            return self.bind_static_call(static, target.name, args, expr.span)
        receiver = self.bind(target.target, scope)
        return self.bind_method(receiver, target.name, args, target.span)

    def bind_static_call(self, static, name, args, span) -> b.BoundExpr:
        base = static.removeprefix("System.")
        arity = len(args)
        if base in ("string", "String"):
            if name in ("IsNullOrEmpty", "IsNullOrWhiteSpace") and arity == 1:
                self.expect(args[0], Kind.STRING, f"string.{name}", span)
                func = (
                    b.Builtin.IS_NULL_OR_EMPTY
                    if name == "IsNullOrEmpty"
                    else b.Builtin.IS_NULL_OR_WHITESPACE
                )
                return b.BCall(func, args, BOOL, span=span)
            if name == "Concat" and arity >= 1:
                return b.BCall(b.Builtin.STRING_CONCAT, args, STRING, span=span)
            if name == "Join" and arity == 2 and args[1].type.kind is Kind.ARRAY:
                self.expect(args[0], Kind.STRING, "string.Join", span)
                return b.BCall(b.Builtin.STRING_JOIN, args, STRING, span=span)
        if base == "DateTime" and name == "Parse" and arity == 1:
            self.expect(args[0], Kind.STRING, "DateTime.Parse", span)
            return b.BCall(b.Builtin.DATETIME_PARSE, args, DATETIME, span=span)
        if base in _PARSE_TARGETS and name == "Parse" and arity == 1:
            self.expect(args[0], Kind.STRING, f"{base}.Parse", span)
            return b.BCall(b.Builtin.PARSE_NUMBER, args, UType(_PARSE_TARGETS[base]), span=span)
        if base == "Convert" and name in _CONVERT_TARGETS and arity == 1:
            target = UType(_CONVERT_TARGETS[name])
            if args[0].type.kind is Kind.STRING:
                return b.BCall(b.Builtin.PARSE_NUMBER, args, target, span=span)
            if args[0].type.is_numeric and target.is_numeric:
                detail = "round" if args[0].type.kind in (Kind.FLOAT, Kind.DOUBLE) else ""
                return b.BCall(b.Builtin.ROUND, args, target, detail or "cast", span=span)
        if base == "Convert" and name == "ToString" and arity == 1:
            return self.bind_method(args[0], "ToString", (), span)
        if base == "Math":
            return self.bind_math(name, args, span)
        if base in ("SqlArray", "SQL.ARRAY") and name == "Create" and arity == 1:
            return self.make_array(args[0], None, span)
        if base == "Guid" and name == "Parse" and arity == 1:
            self.expect(args[0], Kind.STRING, "Guid.Parse", span)
            return b.BCall(b.Builtin.NEW_GUID, args, UType(Kind.GUID), span=span)
        raise self.unsupported(f"{static}.{name} with {arity} argument(s)", span)

    def bind_math(self, name: str, args: tuple[b.BoundExpr, ...], span) -> b.BoundExpr:
        if not all(a.type.is_numeric for a in args):
            raise self.mismatch(f"Math.{name} needs numeric arguments", span)
        if name in ("Abs", "Floor", "Ceiling") and len(args) == 1:
            func = {"Abs": b.Builtin.ABS, "Floor": b.Builtin.FLOOR}.get(name, b.Builtin.CEILING)
            result = args[0].type
            if name != "Abs" and result.is_integral:
                result = DOUBLE.with_nullable(result.nullable)
            return b.BCall(func, args, result, span=span)
        if name == "Round" and len(args) in (1, 2):
            result = args[0].type
            if result.is_integral:
                result = DOUBLE.with_nullable(result.nullable)
            return b.BCall(b.Builtin.ROUND, args, result, "round", span=span)
        if name in ("Min", "Max") and len(args) == 2:
            result = promote_numeric(args[0].type, args[1].type)
            if result is None:
                raise self.mismatch(f"Math.{name} of {args[0].type} and {args[1].type}", span)
            func = b.Builtin.MATH_MIN if name == "Min" else b.Builtin.MATH_MAX
            return b.BCall(func, args, result, span=span)
        raise self.unsupported(f"Math.{name} with {len(args)} argument(s)", span)

    def bind_method(self, receiver: b.BoundExpr, name, args, span) -> b.BoundExpr:
        rtype = receiver.type
        kind = rtype.kind
        arity = len(args)
        every = (receiver, *args)
        if name == "ToString" and arity == 0:
            return b.BCall(b.Builtin.TO_STRING, (receiver,), STRING, span=span)
        if kind is Kind.STRING:
            if name in _STRING_UNARY and arity == 0:
                return b.BCall(_STRING_UNARY[name], every, STRING, span=span)
            if name in _STRING_PREDICATES and arity == 1:
                self.expect(args[0], (Kind.STRING, Kind.CHAR), f"string.{name}", span)
                return b.BCall(_STRING_PREDICATES[name], every, BOOL, span=span)
            if name in _TRIMS:
                for arg in args:
                    self.expect(arg, Kind.CHAR, f"string.{name}", span)
                return b.BCall(_TRIMS[name], every, STRING, span=span)
            if name == "Substring" and arity in (1, 2):
                for arg in args:
                    self.expect(arg, Kind.INT, "string.Substring", span)
                return b.BCall(b.Builtin.SUBSTRING, every, STRING, span=span)
            if name == "IndexOf" and arity == 1:
                self.expect(args[0], (Kind.STRING, Kind.CHAR), "string.IndexOf", span)
                return b.BCall(b.Builtin.INDEX_OF, every, INT, span=span)
            if name == "Replace" and arity == 2:
                for arg in args:
                    self.expect(arg, (Kind.STRING, Kind.CHAR), "string.Replace", span)
                return b.BCall(b.Builtin.REPLACE, every, STRING, span=span)
            if name == "Split" and arity >= 1:
                for arg in args:
                    self.expect(arg, (Kind.CHAR, Kind.STRING), "string.Split", span)
                if any(a.type.kind is Kind.STRING for a in args) and arity > 1:
                    raise self.unsupported("string.Split with a StringSplitOptions", span)
                return b.BCall(b.Builtin.SPLIT, every, UType(Kind.ARRAY, True, STRING), span=span)
        if kind is Kind.DATETIME and not rtype.nullable and name in _DATE_ADDS and arity == 1:
            self.expect(args[0], (Kind.INT, Kind.DOUBLE, Kind.LONG), f"DateTime.{name}", span)
            return b.BCall(b.Builtin.DT_ADD, every, DATETIME, _DATE_ADDS[name], span=span)
        if kind is Kind.ARRAY and name == "Contains" and arity == 1:
            return b.BCall(b.Builtin.ARRAY_CONTAINS, every, BOOL, span=span)
        if rtype.nullable and not rtype.is_reference and name == "GetValueOrDefault" and not args:
            return b.BCall(b.Builtin.GET_VALUE_OR_DEFAULT, every, rtype.with_nullable(False))
        raise self.unsupported(f"method {name} of {rtype} with {arity} argument(s)", span)

    def expect(self, arg: b.BoundExpr, kinds, what: str, span) -> None:
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if arg.type.kind in kinds:
            return
        if arg.type.kind is Kind.NULL and Kind.STRING in kinds:
            return
        wanted = " or ".join(k.value for k in kinds)
        raise self.mismatch(f"{what} expects {wanted}, got {arg.type}", span)
