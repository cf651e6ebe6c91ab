"""The U-SQL syntax tree: frozen dataclasses, one per construct, each with its :class:`Span`.

Spans never take part in equality, so two nodes are equal when they say the same thing
wherever they are written (the binder uses this to match ``GROUP BY`` expressions).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from azhpc.usql.errors import Span

__all__ = [
    "Aggregate",
    "Apply",
    "Assign",
    "Between",
    "Binary",
    "Call",
    "Cast",
    "ColumnDef",
    "Conditional",
    "Declare",
    "Expr",
    "Extract",
    "InList",
    "Index",
    "IsNull",
    "Join",
    "JoinKind",
    "Like",
    "Literal",
    "LiteralKind",
    "Member",
    "Name",
    "NamedArg",
    "New",
    "OrderItem",
    "Output",
    "Query",
    "Reduce",
    "ReferenceAssembly",
    "RowsetSource",
    "Script",
    "Select",
    "SelectItem",
    "SetOp",
    "Source",
    "Star",
    "Statement",
    "SubquerySource",
    "TypeRef",
    "UdoCall",
    "Unary",
    "ValuesSource",
    "Variable",
]


# --------------------------------------------------------------------------- expressions


class LiteralKind(enum.Enum):
    """The C# type a literal is written as."""

    STRING = "string"
    CHAR = "char"
    INT = "int"
    LONG = "long"
    FLOAT = "float"
    DOUBLE = "double"
    DECIMAL = "decimal"
    BOOL = "bool"
    NULL = "null"


@dataclass(frozen=True)
class TypeRef:
    """A C# type as written: ``int?``, ``string``, ``SQL.ARRAY<string>``, ``byte[]``."""

    name: str
    nullable: bool = False
    args: tuple[TypeRef, ...] = ()
    array: bool = False
    span: Span | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        text = self.name
        if self.args:
            text += "<" + ", ".join(str(a) for a in self.args) + ">"
        if self.array:
            text += "[]"
        return text + ("?" if self.nullable else "")


@dataclass(frozen=True)
class Literal:
    """A literal value; ``value`` is the decoded Python value (``None`` for ``null``)."""

    value: object
    kind: LiteralKind
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Name:
    """A bare identifier: a column, an alias, a type or a namespace."""

    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Variable:
    """A scalar ``@variable`` used inside an expression."""

    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Member:
    """``target.name`` (a qualified column, a property, or part of a dotted type name)."""

    target: Expr
    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    """``target(args)``; ``target`` is a :class:`Member` for methods (``s.Substring(1)``)."""

    target: Expr
    args: tuple[Expr, ...]
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Index:
    """``target[index]``."""

    target: Expr
    index: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class New:
    """``new Type(args)``."""

    type: TypeRef
    args: tuple[Expr, ...]
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Unary:
    """``!x``, ``-x``, ``+x``, ``~x`` (and U-SQL's ``NOT x``, stored as ``!``)."""

    op: str
    operand: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Binary:
    """``left op right``; U-SQL's ``AND``/``OR`` are stored as ``&&``/``||``."""

    op: str
    left: Expr
    right: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Conditional:
    """``cond ? then : otherwise``."""

    cond: Expr
    then: Expr
    otherwise: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Cast:
    """``(Type) operand``."""

    type: TypeRef
    operand: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class IsNull:
    """``operand IS [NOT] NULL``."""

    operand: Expr
    negated: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class InList:
    """``operand [NOT] IN (items)``."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Between:
    """``operand [NOT] BETWEEN low AND high``."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Like:
    """``operand [NOT] LIKE pattern``."""

    operand: Expr
    pattern: Expr
    negated: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Aggregate:
    """``COUNT(*)``, ``SUM(DISTINCT x)``, ... (an upper-case built-in aggregate)."""

    name: str
    arg: Expr | None
    distinct: bool
    span: Span | None = field(default=None, compare=False, repr=False)


Expr = (
    Literal
    | Name
    | Variable
    | Member
    | Call
    | Index
    | New
    | Unary
    | Binary
    | Conditional
    | Cast
    | IsNull
    | InList
    | Between
    | Like
    | Aggregate
)


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class ColumnDef:
    """``name Type`` in an EXTRACT or PRODUCE schema."""

    name: str
    type: TypeRef
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class NamedArg:
    """An argument of an extractor/outputter/reducer call; ``name`` is ``None`` if positional."""

    name: str | None
    value: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class UdoCall:
    """``Extractors.Tsv(skipFirstNRows: 1)`` or ``new Extension.Python.Reducer(pyScript: @s)``."""

    name: str
    args: tuple[NamedArg, ...]
    new: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SelectItem:
    """One item of a SELECT list, with its optional ``AS alias``."""

    expr: Expr
    alias: str | None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Star:
    """``*`` or ``alias.*`` in a SELECT list."""

    qualifier: str | None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class OrderItem:
    """``expr [ASC|DESC]``."""

    expr: Expr
    descending: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RowsetSource:
    """``@rowset [AS alias]`` in FROM."""

    name: str
    alias: str | None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ValuesSource:
    """``(VALUES (...), ...) AS alias(columns)``."""

    rows: tuple[tuple[Expr, ...], ...]
    alias: str
    columns: tuple[str, ...]
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SubquerySource:
    """``(query) AS alias``."""

    query: Query
    alias: str
    span: Span | None = field(default=None, compare=False, repr=False)


Source = RowsetSource | ValuesSource | SubquerySource


class JoinKind(enum.Enum):
    """The join flavours U-SQL has."""

    INNER = "INNER JOIN"
    LEFT = "LEFT OUTER JOIN"
    RIGHT = "RIGHT OUTER JOIN"
    FULL = "FULL OUTER JOIN"
    CROSS = "CROSS JOIN"
    LEFT_SEMI = "LEFT SEMIJOIN"
    RIGHT_SEMI = "RIGHT SEMIJOIN"
    LEFT_ANTI = "LEFT ANTISEMIJOIN"
    RIGHT_ANTI = "RIGHT ANTISEMIJOIN"


@dataclass(frozen=True)
class Join:
    """``kind JOIN source ON condition`` following the first FROM source."""

    kind: JoinKind
    source: Source
    condition: Expr | None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Apply:
    """``CROSS APPLY EXPLODE(expr) AS alias(columns)`` (``outer`` for OUTER APPLY)."""

    expr: Expr
    alias: str
    columns: tuple[str, ...]
    outer: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Select:
    """A SELECT expression."""

    distinct: bool
    items: tuple[SelectItem | Star, ...]
    source: Source | None
    joins: tuple[Join | Apply, ...] = ()
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None
    fetch: int | None = None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SetOp:
    """``left UNION|INTERSECT|EXCEPT [ALL|DISTINCT] right``."""

    op: str
    all: bool
    left: Query
    right: Query
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Extract:
    """``EXTRACT columns FROM paths USING extractor``."""

    columns: tuple[ColumnDef, ...]
    paths: tuple[Expr, ...]
    using: UdoCall
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Reduce:
    """``REDUCE input ON keys|ALL [PRESORT] PRODUCE schema [READONLY] [REQUIRED] USING udo``."""

    input: RowsetSource
    keys: tuple[Name, ...] | None
    presort: tuple[OrderItem, ...]
    produce: tuple[ColumnDef, ...]
    readonly: tuple[Name, ...]
    required: tuple[Name, ...]
    using: UdoCall
    span: Span | None = field(default=None, compare=False, repr=False)


Query = Select | SetOp | Extract | Reduce


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Declare:
    """``DECLARE [EXTERNAL|CONST] @name [Type] = value;``."""

    name: str
    type: TypeRef | None
    value: Expr
    external: bool
    const: bool
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ReferenceAssembly:
    """``REFERENCE ASSEMBLY name;`` (``name`` may be ``master.ExtPython``)."""

    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Assign:
    """``@rowset = query;``."""

    name: str
    query: Query
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Output:
    """``OUTPUT @rowset TO path [ORDER BY ...] USING outputter;``."""

    rowset: RowsetSource
    path: Expr
    order_by: tuple[OrderItem, ...]
    using: UdoCall
    span: Span | None = field(default=None, compare=False, repr=False)


Statement = Declare | ReferenceAssembly | Assign | Output


@dataclass(frozen=True)
class Script:
    """A parsed script: its statements, its text and its name."""

    statements: tuple[Statement, ...]
    source: str = field(compare=False, repr=False)
    name: str = "script.usql"
