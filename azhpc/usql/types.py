"""C# types as U-SQL uses them: names, nullability, numeric promotion and DuckDB storage types.

Value types (``int``, ``DateTime``, ...) are not nullable unless written ``T?``; reference types
(``string``, ``byte[]``, ``SQL.ARRAY<T>``) are always nullable and cannot be marked ``?``.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass

__all__ = [
    "DATETIME_FORMATS",
    "Kind",
    "UType",
    "common_type",
    "implicitly_converts",
    "parse_csharp_datetime",
    "promote_numeric",
    "type_from_name",
]


class Kind(enum.Enum):
    """The built-in U-SQL column types (plus the type of the ``null`` literal)."""

    STRING = "string"
    CHAR = "char"
    BOOL = "bool"
    BYTE = "byte"
    SBYTE = "sbyte"
    SHORT = "short"
    USHORT = "ushort"
    INT = "int"
    UINT = "uint"
    LONG = "long"
    ULONG = "ulong"
    FLOAT = "float"
    DOUBLE = "double"
    DECIMAL = "decimal"
    DATETIME = "DateTime"
    GUID = "Guid"
    BYTES = "byte[]"
    ARRAY = "SQL.ARRAY"
    NULL = "null"


_REFERENCE = frozenset({Kind.STRING, Kind.BYTES, Kind.ARRAY, Kind.NULL})
_INTEGRAL = (
    Kind.SBYTE,
    Kind.BYTE,
    Kind.SHORT,
    Kind.USHORT,
    Kind.CHAR,
    Kind.INT,
    Kind.UINT,
    Kind.LONG,
    Kind.ULONG,
)
_NUMERIC_RANK = {
    Kind.SBYTE: 1,
    Kind.BYTE: 1,
    Kind.SHORT: 1,
    Kind.USHORT: 1,
    Kind.CHAR: 1,
    Kind.INT: 1,
    Kind.UINT: 2,
    Kind.LONG: 3,
    Kind.ULONG: 4,
    Kind.FLOAT: 5,
    Kind.DOUBLE: 6,
    Kind.DECIMAL: 7,
}
_DUCKDB = {
    Kind.STRING: "VARCHAR",
    Kind.CHAR: "VARCHAR",
    Kind.BOOL: "BOOLEAN",
    Kind.BYTE: "UTINYINT",
    Kind.SBYTE: "TINYINT",
    Kind.SHORT: "SMALLINT",
    Kind.USHORT: "USMALLINT",
    Kind.INT: "INTEGER",
    Kind.UINT: "UINTEGER",
    Kind.LONG: "BIGINT",
    Kind.ULONG: "UBIGINT",
    Kind.FLOAT: "FLOAT",
    Kind.DOUBLE: "DOUBLE",
    Kind.DECIMAL: "DECIMAL(38,10)",
    Kind.DATETIME: "TIMESTAMP",
    Kind.GUID: "UUID",
    Kind.BYTES: "BLOB",
    Kind.NULL: "VARCHAR",
}
_NAMES = {
    "string": Kind.STRING,
    "String": Kind.STRING,
    "System.String": Kind.STRING,
    "char": Kind.CHAR,
    "Char": Kind.CHAR,
    "bool": Kind.BOOL,
    "Boolean": Kind.BOOL,
    "byte": Kind.BYTE,
    "Byte": Kind.BYTE,
    "sbyte": Kind.SBYTE,
    "SByte": Kind.SBYTE,
    "short": Kind.SHORT,
    "Int16": Kind.SHORT,
    "ushort": Kind.USHORT,
    "UInt16": Kind.USHORT,
    "int": Kind.INT,
    "Int32": Kind.INT,
    "System.Int32": Kind.INT,
    "uint": Kind.UINT,
    "UInt32": Kind.UINT,
    "long": Kind.LONG,
    "Int64": Kind.LONG,
    "System.Int64": Kind.LONG,
    "ulong": Kind.ULONG,
    "UInt64": Kind.ULONG,
    "float": Kind.FLOAT,
    "Single": Kind.FLOAT,
    "double": Kind.DOUBLE,
    "Double": Kind.DOUBLE,
    "System.Double": Kind.DOUBLE,
    "decimal": Kind.DECIMAL,
    "Decimal": Kind.DECIMAL,
    "DateTime": Kind.DATETIME,
    "System.DateTime": Kind.DATETIME,
    "Guid": Kind.GUID,
    "System.Guid": Kind.GUID,
}
_ARRAY_NAMES = frozenset({"SQL.ARRAY", "SqlArray", "Microsoft.Analytics.Types.Sql.SqlArray"})


@dataclass(frozen=True)
class UType:
    """A U-SQL/C# type: a :class:`Kind`, whether it is ``T?``, and an element type for arrays."""

    kind: Kind
    nullable: bool = False
    element: UType | None = None

    def __post_init__(self) -> None:
        if self.kind in _REFERENCE and not self.nullable:
            object.__setattr__(self, "nullable", True)

    @property
    def is_reference(self) -> bool:
        return self.kind in _REFERENCE

    @property
    def is_numeric(self) -> bool:
        return self.kind in _NUMERIC_RANK and self.kind is not Kind.CHAR

    @property
    def is_integral(self) -> bool:
        return self.kind in _INTEGRAL and self.kind is not Kind.CHAR

    @property
    def is_floating(self) -> bool:
        return self.kind in (Kind.FLOAT, Kind.DOUBLE)

    @property
    def duckdb(self) -> str:
        """The DuckDB type that stores values of this type."""
        if self.kind is Kind.ARRAY:
            assert self.element is not None
            return f"{self.element.duckdb}[]"
        return _DUCKDB[self.kind]

    def with_nullable(self, nullable: bool) -> UType:
        """This type as ``T?`` (or as ``T``); reference types stay nullable."""
        return UType(self.kind, nullable, self.element)

    def __str__(self) -> str:
        if self.kind is Kind.ARRAY:
            return f"SQL.ARRAY<{self.element}>"
        if self.kind is Kind.NULL:
            return "<null>"
        return self.kind.value + ("?" if self.nullable and not self.is_reference else "")


STRING = UType(Kind.STRING)
BOOL = UType(Kind.BOOL)
INT = UType(Kind.INT)
LONG = UType(Kind.LONG)
DOUBLE = UType(Kind.DOUBLE)
DATETIME = UType(Kind.DATETIME)
NULL = UType(Kind.NULL)


def type_from_name(name: str, nullable: bool, args: tuple[UType, ...] = (), array: bool = False):
    """The :class:`UType` for a C# type name, or a string saying why there is none."""
    if array:
        if name in ("byte", "Byte") and not args:
            return UType(Kind.BYTES) if not nullable else "byte[] cannot be marked nullable"
        return f"C# arrays ({name}[]) are not a U-SQL column type; use SQL.ARRAY<{name}>"
    if name in _ARRAY_NAMES:
        if len(args) != 1:
            return "SQL.ARRAY takes one type argument"
        if nullable:
            return "SQL.ARRAY cannot be marked nullable"
        return UType(Kind.ARRAY, True, args[0])
    kind = _NAMES.get(name)
    if kind is None:
        return f"unknown type '{name}'"
    if kind in _REFERENCE and nullable:
        return f"'{name}' is a reference type and cannot be marked nullable with '?'"
    return UType(kind, nullable)


def promote_numeric(a: UType, b: UType) -> UType | None:
    """C# binary numeric promotion; ``None`` when C# has no operator for the pair."""
    if a.kind not in _NUMERIC_RANK or b.kind not in _NUMERIC_RANK:
        return None
    if Kind.DECIMAL in (a.kind, b.kind) and (a.is_floating or b.is_floating):
        return None
    if Kind.ULONG in (a.kind, b.kind) and {a.kind, b.kind} & {Kind.SBYTE, Kind.SHORT, Kind.INT}:
        return None
    nullable = a.nullable or b.nullable
    if Kind.UINT in (a.kind, b.kind) and {a.kind, b.kind} & {Kind.SBYTE, Kind.SHORT, Kind.INT}:
        return UType(Kind.LONG, nullable)
    rank = max(_NUMERIC_RANK[a.kind], _NUMERIC_RANK[b.kind])
    kind = {1: Kind.INT, 2: Kind.UINT, 3: Kind.LONG, 4: Kind.ULONG}.get(rank)
    if kind is None:
        kind = {5: Kind.FLOAT, 6: Kind.DOUBLE, 7: Kind.DECIMAL}[rank]
    return UType(kind, nullable)


def implicitly_converts(source: UType, target: UType) -> bool:
    """Whether C# converts ``source`` to ``target`` without a cast."""
    if source.kind is Kind.NULL:
        return target.nullable
    if source.nullable and not target.nullable:
        return False
    if source.kind is target.kind:
        return source.kind is not Kind.ARRAY or source.element == target.element
    if source.kind in _NUMERIC_RANK and target.kind in _NUMERIC_RANK:
        if target.kind is Kind.CHAR:
            return False
        if target.kind is Kind.DECIMAL:
            return source.is_integral or source.kind is Kind.CHAR
        if source.kind is Kind.DECIMAL:
            return False
        widened = promote_numeric(source.with_nullable(False), target.with_nullable(False))
        return widened is not None and widened.kind is target.kind
    return False


def common_type(a: UType, b: UType) -> UType | None:
    """The type both ``a`` and ``b`` convert to (for ``?:``, ``??``, VALUES rows, UNION)."""
    if a.kind is Kind.NULL:
        return b if b.nullable else b.with_nullable(True)
    if b.kind is Kind.NULL:
        return a if a.nullable else a.with_nullable(True)
    nullable = a.nullable or b.nullable
    if implicitly_converts(a.with_nullable(nullable), b.with_nullable(nullable)):
        return b.with_nullable(nullable)
    if implicitly_converts(b.with_nullable(nullable), a.with_nullable(nullable)):
        return a.with_nullable(nullable)
    return None


#: The strptime formats (DuckDB and Python share them) that stand in for C#'s
#: ``DateTime.Parse`` under the en-US culture ADLA used.
DATETIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %I:%M:%S %p",
    "%Y/%m/%d",
)


def parse_csharp_datetime(text: str) -> _dt.datetime:
    """Parse ``text`` as C# ``DateTime.Parse`` would for the formats in :data:`DATETIME_FORMATS`.

    Raises
    ------
    ValueError
        When no format matches.
    """
    stripped = text.strip()
    iso = stripped.rstrip("Z")
    if "T" in iso and "." in iso:  # C# "O" format carries 7 fractional digits
        head, frac = iso.split(".", 1)
        iso = head + "." + frac[:6]
    for fmt in DATETIME_FORMATS:
        try:
            return _dt.datetime.strptime(iso if "T" in fmt else stripped, fmt)
        except ValueError:
            continue
    raise ValueError(f"String '{text}' was not recognized as a valid DateTime.")
