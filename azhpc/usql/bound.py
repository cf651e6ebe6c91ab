"""The bound (typed, resolved) form of a script that the binder hands to the planner.

Bound expressions carry their :class:`~azhpc.usql.types.UType`; column references point at a
source by position and a column by index, so nothing downstream looks names up again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from azhpc.usql.errors import Span
from azhpc.usql.types import BOOL, UType

__all__ = [
    "BAggregate",
    "BBetween",
    "BBinary",
    "BCall",
    "BCast",
    "BColumn",
    "BConditional",
    "BInList",
    "BIsNull",
    "BLike",
    "BLiteral",
    "BUnary",
    "BinOp",
    "BoundApply",
    "BoundExpr",
    "BoundExtract",
    "BoundJoin",
    "BoundOutput",
    "BoundQuery",
    "BoundReduce",
    "BoundScript",
    "BoundSelect",
    "BoundSetOp",
    "BoundSource",
    "Builtin",
    "Column",
    "ExtractOptions",
    "FileSet",
    "OutputOptions",
    "Schema",
]


@dataclass(frozen=True)
class Column:
    """A named, typed column of a rowset."""

    name: str
    type: UType


@dataclass(frozen=True)
class Schema:
    """The ordered columns of a rowset."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def find(self, name: str) -> int | None:
        for i, column in enumerate(self.columns):
            if column.name == name:
                return i
        return None

    def __str__(self) -> str:
        return "(" + ", ".join(f"{c.name} {c.type}" for c in self.columns) + ")"


# --------------------------------------------------------------------------- expressions


class BinOp(enum.Enum):
    """Binary operators after typing (``+`` splits into ADD and CONCAT, ``/`` into two)."""

    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    INT_DIV = "div"
    MOD = "%"
    CONCAT = "concat"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "&&"
    OR = "||"
    BIT_AND = "&"
    BIT_OR = "|"
    BIT_XOR = "^"
    COALESCE = "??"


class Builtin(enum.Enum):
    """The C# members and functions azhpc translates."""

    LENGTH = "string.Length"
    UPPER = "string.ToUpper"
    LOWER = "string.ToLower"
    TRIM = "string.Trim"
    TRIM_START = "string.TrimStart"
    TRIM_END = "string.TrimEnd"
    CONTAINS = "string.Contains"
    STARTS_WITH = "string.StartsWith"
    ENDS_WITH = "string.EndsWith"
    SUBSTRING = "string.Substring"
    INDEX_OF = "string.IndexOf"
    REPLACE = "string.Replace"
    SPLIT = "string.Split"
    STRING_EQUALS = "string.Equals"
    IS_NULL_OR_EMPTY = "string.IsNullOrEmpty"
    IS_NULL_OR_WHITESPACE = "string.IsNullOrWhiteSpace"
    STRING_CONCAT = "string.Concat"
    STRING_JOIN = "string.Join"
    TO_STRING = "ToString"
    DATETIME_PARSE = "DateTime.Parse"
    NEW_DATETIME = "new DateTime"
    DT_PART = "DateTime part"
    DT_DATE = "DateTime.Date"
    DT_ADD = "DateTime.Add*"
    PARSE_NUMBER = "T.Parse"
    ARRAY_OF = "SQL.ARRAY"
    ARRAY_INDEX = "array[index]"
    ARRAY_COUNT = "array.Count"
    ARRAY_CONTAINS = "array.Contains"
    HAS_VALUE = "Nullable.HasValue"
    VALUE = "Nullable.Value"
    GET_VALUE_OR_DEFAULT = "Nullable.GetValueOrDefault"
    ABS = "Math.Abs"
    FLOOR = "Math.Floor"
    CEILING = "Math.Ceiling"
    ROUND = "Math.Round"
    MATH_MIN = "Math.Min"
    MATH_MAX = "Math.Max"
    NEW_GUID = "Guid.Parse"


@dataclass(frozen=True)
class BColumn:
    source: int
    index: int
    type: UType
    name: str = field(default="", compare=False)


@dataclass(frozen=True)
class BLiteral:
    value: object
    type: UType


@dataclass(frozen=True)
class BUnary:
    op: str
    operand: BoundExpr
    type: UType


@dataclass(frozen=True)
class BBinary:
    op: BinOp
    left: BoundExpr
    right: BoundExpr
    type: UType
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BConditional:
    cond: BoundExpr
    then: BoundExpr
    otherwise: BoundExpr
    type: UType


@dataclass(frozen=True)
class BIsNull:
    operand: BoundExpr
    negated: bool
    type: UType = BOOL


@dataclass(frozen=True)
class BInList:
    operand: BoundExpr
    items: tuple[BoundExpr, ...]
    negated: bool
    type: UType = BOOL


@dataclass(frozen=True)
class BBetween:
    operand: BoundExpr
    low: BoundExpr
    high: BoundExpr
    negated: bool
    type: UType = BOOL


@dataclass(frozen=True)
class BLike:
    operand: BoundExpr
    pattern: BoundExpr
    negated: bool
    type: UType = BOOL


@dataclass(frozen=True)
class BCast:
    operand: BoundExpr
    type: UType
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BCall:
    """A translated C# member or function; ``detail`` holds a sub-kind (a date part, ...)."""

    func: Builtin
    args: tuple[BoundExpr, ...]
    type: UType
    detail: str = ""
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BAggregate:
    func: str
    arg: BoundExpr | None
    distinct: bool
    type: UType


BoundExpr = (
    BColumn
    | BLiteral
    | BUnary
    | BBinary
    | BConditional
    | BIsNull
    | BInList
    | BBetween
    | BLike
    | BCast
    | BCall
    | BAggregate
)


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class BoundSource:
    """One FROM/JOIN source: a rowset relation, VALUES rows, or a nested query."""

    alias: str
    schema: Schema
    relation: str | None = None
    values: tuple[tuple[BoundExpr, ...], ...] | None = None
    query: BoundQuery | None = None
    visible: bool = True


@dataclass(frozen=True)
class BoundJoin:
    kind: str  # a nodes.JoinKind name
    source: int
    condition: BoundExpr | None


@dataclass(frozen=True)
class BoundApply:
    source: int
    expr: BoundExpr
    outer: bool


@dataclass(frozen=True)
class BoundSelect:
    schema: Schema
    sources: tuple[BoundSource, ...]
    steps: tuple[BoundJoin | BoundApply, ...]
    items: tuple[BoundExpr, ...]
    distinct: bool = False
    where: BoundExpr | None = None
    group_by: tuple[BoundExpr, ...] = ()
    grouped: bool = False
    having: BoundExpr | None = None
    order_by: tuple[tuple[BoundExpr | int, bool], ...] = ()
    offset: int | None = None
    fetch: int | None = None


@dataclass(frozen=True)
class BoundSetOp:
    schema: Schema
    op: str
    all: bool
    left: BoundQuery
    right: BoundQuery


@dataclass(frozen=True)
class FileSet:
    """A path or file-set pattern; ``virtual`` names the schema columns the pattern fills."""

    pattern: str
    virtual: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtractOptions:
    """The built-in extractors' parameters, with their documented defaults."""

    delimiter: str = ","
    skip_first_n_rows: int = 0
    silent: bool = False
    quoting: bool = True
    null_escape: str | None = None
    encoding: str = "utf-8"
    row_delimiter: str | None = None
    escape_character: str | None = None


@dataclass(frozen=True)
class BoundExtract:
    schema: Schema
    files: tuple[FileSet, ...]
    data_columns: tuple[int, ...]
    options: ExtractOptions
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BoundReduce:
    schema: Schema
    input: str
    input_schema: Schema
    keys: tuple[int, ...] | None
    presort: tuple[tuple[int, bool], ...]
    script: str
    script_file: str
    script_line: int
    span: Span | None = field(default=None, compare=False, repr=False)


BoundQuery = BoundSelect | BoundSetOp | BoundExtract | BoundReduce


@dataclass(frozen=True)
class OutputOptions:
    """The built-in outputters' parameters, with their documented defaults."""

    delimiter: str = ","
    output_header: bool = False
    quoting: bool = True
    null_escape: str | None = None
    date_time_format: str | None = "O"
    row_delimiter: str = "\r\n"
    encoding: str = "utf-8"
    escape_character: str | None = None


@dataclass(frozen=True)
class BoundOutput:
    relation: str
    schema: Schema
    path: str
    order_by: tuple[tuple[int, bool], ...]
    options: OutputOptions
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BoundScript:
    """Every rowset assignment (relation name to query, in script order) and every OUTPUT."""

    name: str
    source: str
    rowsets: tuple[tuple[str, str, BoundQuery, Span], ...]
    outputs: tuple[BoundOutput, ...]
    variables: dict[str, tuple[object, UType]] = field(default_factory=dict, compare=False)
