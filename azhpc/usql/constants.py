"""Compile-time evaluation of bound expressions: DECLARE values, paths and UDO arguments.

U-SQL evaluates ``DECLARE`` values once, before the rowset statements run, so they are folded
here in Python and enter the plan as literals. Folding covers literals, variables, string
concatenation, arithmetic, comparisons, ``?:``/``??``, casts, ``DateTime.Parse``,
``new DateTime(...)`` and the common string methods; anything else raises
``E_AZHPC_USQL_NOTSUPPORTED`` naming the construct.
"""

from __future__ import annotations

import datetime as _dt
import math
from decimal import Decimal

from azhpc.usql import bound as b
from azhpc.usql.types import Kind, UType, parse_csharp_datetime

__all__ = ["NotConstant", "csharp_to_string", "fold"]


class NotConstant(Exception):
    """The expression cannot be evaluated at compile time; ``args[0]`` says why."""


def csharp_to_string(value: object, utype: UType) -> str:
    """``value.ToString()`` as C# on en-US formats it (null becomes the empty string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        digits = 7 if utype.kind is Kind.FLOAT else 15
        return format(value, f".{digits}G")
    if isinstance(value, _dt.datetime):
        hour = value.hour % 12 or 12
        suffix = "AM" if value.hour < 12 else "PM"
        return (
            f"{value.month}/{value.day}/{value.year} "
            f"{hour}:{value.minute:02d}:{value.second:02d} {suffix}"
        )
    return str(value)


def _require(value: object, what: str) -> object:
    if value is None:
        raise NotConstant(f"{what} on a null value")
    return value


def _arith(op: b.BinOp, left, right, result: UType):
    if left is None or right is None:
        return None
    if op is b.BinOp.ADD:
        value = left + right
    elif op is b.BinOp.SUB:
        value = left - right
    elif op is b.BinOp.MUL:
        value = left * right
    elif op is b.BinOp.DIV:
        value = left / right if right != 0 else math.copysign(math.inf, left) if left else math.nan
    elif op is b.BinOp.INT_DIV:
        if right == 0:
            raise NotConstant("division by zero")
        value = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
    else:  # MOD: C# remainder takes the sign of the dividend
        if right == 0:
            raise NotConstant("division by zero")
        value = math.fmod(left, right) if result.is_floating else int(math.fmod(left, right))
    if result.is_floating:
        return float(value)
    if result.kind is Kind.DECIMAL:
        return Decimal(value)
    return int(value)


def _compare(op: b.BinOp, left, right) -> bool:
    if op is b.BinOp.EQ:
        return left == right
    if op is b.BinOp.NE:
        return left != right
    if left is None or right is None:
        return False
    if op is b.BinOp.LT:
        return left < right
    if op is b.BinOp.LE:
        return left <= right
    if op is b.BinOp.GT:
        return left > right
    return left >= right


def _convert(value: object, target: UType) -> object:
    if value is None:
        return None
    if target.is_integral:
        if isinstance(value, str):  # char to int
            return ord(value)
        return int(value)  # C# truncates toward zero, as int() does
    if target.is_floating:
        return float(ord(value) if isinstance(value, str) else value)
    if target.kind is Kind.DECIMAL:
        return Decimal(str(value))
    if target.kind is Kind.CHAR and isinstance(value, int):
        return chr(value)
    return value


def fold(expr: b.BoundExpr) -> object:
    """Evaluate a bound expression that refers to no column.

    Raises
    ------
    NotConstant
        When the expression needs a row, or uses a construct folding does not cover.
    """
    match expr:
        case b.BLiteral():
            return expr.value
        case b.BColumn():
            raise NotConstant(f"column '{expr.name}' in a constant expression")
        case b.BAggregate():
            raise NotConstant("an aggregate in a constant expression")
        case b.BUnary():
            value = fold(expr.operand)
            if value is None:
                return None
            if expr.op == "!":
                return not value
            if expr.op == "-":
                return -value  # type: ignore[operator]
            if expr.op == "~":
                return ~value  # type: ignore[operator]
            return value
        case b.BBinary():
            return _fold_binary(expr)
        case b.BConditional():
            return fold(expr.then) if fold(expr.cond) else fold(expr.otherwise)
        case b.BIsNull():
            return (fold(expr.operand) is None) != expr.negated
        case b.BInList():
            value = fold(expr.operand)
            found = value is not None and any(value == fold(i) for i in expr.items)
            return found != expr.negated
        case b.BBetween():
            value, low, high = fold(expr.operand), fold(expr.low), fold(expr.high)
            inside = None not in (value, low, high) and low <= value <= high  # type: ignore[operator]
            return inside != expr.negated
        case b.BCast():
            return _convert(fold(expr.operand), expr.type)
        case b.BCall():
            return _fold_call(expr)
    raise NotConstant(type(expr).__name__)


def _fold_binary(expr: b.BBinary) -> object:
    op = expr.op
    if op is b.BinOp.AND:
        return bool(fold(expr.left)) and bool(fold(expr.right))
    if op is b.BinOp.OR:
        return bool(fold(expr.left)) or bool(fold(expr.right))
    left, right = fold(expr.left), fold(expr.right)
    if op is b.BinOp.CONCAT:
        return csharp_to_string(left, expr.left.type) + csharp_to_string(right, expr.right.type)
    if op is b.BinOp.COALESCE:
        return left if left is not None else right
    if op in (b.BinOp.EQ, b.BinOp.NE, b.BinOp.LT, b.BinOp.LE, b.BinOp.GT, b.BinOp.GE):
        return _compare(op, left, right)
    if op in (b.BinOp.ADD, b.BinOp.SUB, b.BinOp.MUL, b.BinOp.DIV, b.BinOp.INT_DIV, b.BinOp.MOD):
        return _arith(op, left, right, expr.type)
    raise NotConstant(f"operator {op.value} in a constant expression")


def _fold_call(expr: b.BCall) -> object:
    func = expr.func
    args = [fold(a) for a in expr.args]
    if func is b.Builtin.DATETIME_PARSE:
        try:
            return parse_csharp_datetime(str(_require(args[0], "DateTime.Parse")))
        except ValueError as exc:
            raise NotConstant(str(exc)) from None
    if func is b.Builtin.NEW_DATETIME:
        return _dt.datetime(*[int(a) for a in args])  # type: ignore[arg-type]
    if func is b.Builtin.TO_STRING:
        return csharp_to_string(args[0], expr.args[0].type)
    if func is b.Builtin.IS_NULL_OR_EMPTY:
        return not args[0]
    if func is b.Builtin.STRING_CONCAT:
        return "".join(csharp_to_string(v, a.type) for v, a in zip(args, expr.args, strict=True))
    if func is b.Builtin.DT_ADD:
        start = _require(args[0], "DateTime.Add")
        amount = args[1]
        unit = expr.detail
        if unit in ("month", "year"):
            months = int(amount) * (12 if unit == "year" else 1)  # type: ignore[arg-type]
            total = start.month - 1 + months  # type: ignore[attr-defined]
            year, month = start.year + total // 12, total % 12 + 1  # type: ignore[attr-defined]
            return start.replace(year=year, month=month)  # type: ignore[attr-defined]
        return start + _dt.timedelta(**{unit + "s": float(amount)})  # type: ignore[operator,arg-type]
    if func is b.Builtin.DT_PART:
        value = _require(args[0], "DateTime part")
        if expr.detail == "dayofyear":
            return value.timetuple().tm_yday  # type: ignore[attr-defined]
        if expr.detail == "millisecond":
            return value.microsecond // 1000  # type: ignore[attr-defined]
        return getattr(value, expr.detail)
    if func is b.Builtin.DT_DATE:
        value = _require(args[0], "DateTime.Date")
        return value.replace(hour=0, minute=0, second=0, microsecond=0)  # type: ignore[attr-defined]
    text = args[0] if args else None
    if func is b.Builtin.UPPER:
        return str(_require(text, "ToUpper")).upper()
    if func is b.Builtin.LOWER:
        return str(_require(text, "ToLower")).lower()
    if func is b.Builtin.TRIM:
        return str(_require(text, "Trim")).strip()
    if func is b.Builtin.LENGTH:
        return len(str(_require(text, "Length")))
    if func is b.Builtin.REPLACE:
        return str(_require(text, "Replace")).replace(str(args[1]), str(args[2]))
    if func is b.Builtin.PARSE_NUMBER:
        try:
            return _convert(
                float(str(text)) if expr.type.is_floating else int(str(text)), expr.type
            )
        except ValueError:
            raise NotConstant(f"'{text}' is not a valid {expr.type}") from None
    raise NotConstant(f"{func.value} in a constant expression")
