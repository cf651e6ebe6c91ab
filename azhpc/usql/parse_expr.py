"""Recursive-descent parsing of the C# expressions embedded in U-SQL.

Precedence, lowest first: ``?:``, ``??``, ``||``/``OR``, ``&&``/``AND``, ``|``, ``^``, ``&``,
``==``/``!=``, relational (``< > <= >=``, ``IS [NOT] NULL``, ``[NOT] IN``, ``[NOT] BETWEEN``,
``[NOT] LIKE``), additive, multiplicative, unary (``! - + ~ NOT``, casts), primary (literals,
names, ``@variables``, member access, calls, indexing, ``new``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

from azhpc.usql import nodes as n
from azhpc.usql.errors import ErrorCode, Span, UsqlError
from azhpc.usql.tokens import Token, TokenKind

__all__ = ["AGGREGATES", "MAX_DEPTH", "MAX_NESTING", "ExpressionParser"]

#: How many parentheses, calls, brackets and IN lists an expression may nest. Each level costs
#: this recursive-descent parser about 15 Python frames (one per precedence level).
MAX_NESTING = 32
#: How deep an expression's tree may be: a chain ``a + b + c ...`` or ``c1 ? v1 : c2 ? ...`` is
#: as deep as it is long, and the binder and SQL generator walk trees recursively.
MAX_DEPTH = 150

#: Built-in aggregates (upper-case names followed by a parenthesis).
AGGREGATES = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX", "ARRAY_AGG", "MAP_AGG", "ANY_VALUE"})
#: Window and other aggregates U-SQL has and azhpc does not run.
_UNSUPPORTED_AGGREGATES = frozenset(
    {"STDEV", "STDEVP", "VAR", "VARP", "FIRST_VALUE", "LAST_VALUE", "ROW_NUMBER", "RANK"}
    | {"DENSE_RANK", "NTILE", "LAG", "LEAD", "CUME_DIST", "PERCENT_RANK", "PERCENTILE_CONT"}
    | {"PERCENTILE_DISC"}
)
_PRIMITIVE_TYPES = frozenset(
    {"string", "int", "long", "short", "byte", "sbyte", "uint", "ulong", "ushort", "float"}
    | {"double", "decimal", "bool", "char", "DateTime", "Guid", "object"}
)


class ExpressionParser:
    """A token cursor plus the C# expression grammar (the statement parser extends it)."""

    def __init__(self, tokens: list[Token], source: str, script: str) -> None:
        self.tokens = tokens
        self.source = source
        self.script = script
        self.i = 0
        self.nesting = 0  # parse_expr calls open now (parentheses, calls, brackets)
        self.chain = 0  # unary, ?: and ?? operators being parsed recursively now

    # ------------------------------------------------------------------ cursor helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not TokenKind.EOF:
            self.i += 1
        return token

    def error(self, message: str, token: Token | None = None, code: ErrorCode | None = None):
        token = token or self.tok
        return UsqlError(
            code or ErrorCode.SYNTAX,
            message,
            script=self.script,
            span=token.span,
            source=self.source,
        )

    def unsupported(self, what: str, token: Token | None = None) -> UsqlError:
        return self.error(f"not supported: {what}", token, ErrorCode.NOT_SUPPORTED)

    def describe(self, token: Token) -> str:
        if token.kind is TokenKind.EOF:
            return "end of script"
        return f"{token.kind.value} '{token.text}'"

    def expect_op(self, op: str) -> Token:
        if not self.tok.is_op(op):
            raise self.error(f"expected '{op}' but found {self.describe(self.tok)}")
        return self.next()

    def expect_keyword(self, word: str) -> Token:
        if not self.tok.is_keyword(word):
            raise self.error(f"expected {word} but found {self.describe(self.tok)}")
        return self.next()

    def accept_op(self, op: str) -> bool:
        if self.tok.is_op(op):
            self.next()
            return True
        return False

    def accept_keyword(self, *words: str) -> Token | None:
        if self.tok.is_keyword(*words):
            return self.next()
        return None

    def identifier(self, what: str = "an identifier") -> tuple[str, Token]:
        token = self.tok
        if token.kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT):
            self.next()
            return str(token.value), token
        raise self.error(f"expected {what} but found {self.describe(token)}")

    # ------------------------------------------------------------------ types
    def parse_type(self) -> n.TypeRef:
        """``name(.name)*[<args>][[]][?]``."""
        first = self.tok
        name, _ = self.identifier("a type")
        while self.tok.is_op(".") and self.peek().kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT):
            self.next()
            part, _ = self.identifier()
            name += "." + part
        args: tuple[n.TypeRef, ...] = ()
        if self.tok.is_op("<"):
            self.next()
            items = [self.parse_type()]
            while self.accept_op(","):
                items.append(self.parse_type())
            self.expect_op(">")
            args = tuple(items)
        array = False
        if self.tok.is_op("[") and self.peek().is_op("]"):
            self.next()
            self.next()
            array = True
        nullable = self.accept_op("?")
        return n.TypeRef(name, nullable, args, array, first.span)

    def looks_like_cast(self) -> bool:
        """At ``(``: is this ``(Type) operand`` rather than a parenthesised expression?"""
        j = self.i + 1
        toks = self.tokens
        if toks[j].kind is not TokenKind.IDENT:
            return False
        first = str(toks[j].value)
        j += 1
        while toks[j].is_op(".") and toks[j + 1].kind is TokenKind.IDENT:
            j += 2
        if toks[j].is_op("<"):
            depth = 0
            while toks[j].kind is not TokenKind.EOF:
                if toks[j].is_op("<"):
                    depth += 1
                elif toks[j].is_op(">"):
                    depth -= 1
                    if depth == 0:
                        j += 1
                        break
                j += 1
        if toks[j].is_op("[") and toks[j + 1].is_op("]"):
            j += 2
        nullable = toks[j].is_op("?")
        if nullable:
            j += 1
        if not toks[j].is_op(")"):
            return False
        if first in _PRIMITIVE_TYPES or nullable:
            return True
        after = toks[j + 1]
        return after.kind in (
            TokenKind.IDENT,
            TokenKind.QUOTED_IDENT,
            TokenKind.VARIABLE,
            TokenKind.STRING,
            TokenKind.NUMBER,
            TokenKind.CHAR,
        ) or after.is_op("(")

    # ------------------------------------------------------------------ expressions
    def parse_expr(self) -> n.Expr:
        if self.nesting > MAX_NESTING:  # the outermost expression is level 0
            raise self.unsupported(
                f"expressions nested more than {MAX_NESTING} levels deep (parentheses, calls, "
                "brackets); compute the inner part in an earlier SELECT, or write it flatter"
            )
        self.nesting += 1
        try:
            expr = self.parse_conditional()
        finally:
            self.nesting -= 1
        if self.nesting == 0:
            self.check_depth(expr)
        return expr

    def check_depth(self, expr: n.Expr) -> None:
        """Refuse a tree deeper than :data:`MAX_DEPTH` at the first node below that depth
        (walked with a list, not recursively)."""
        stack: list[tuple[object, int]] = [(expr, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise self.too_deep(_span_of(node))  # type: ignore[arg-type]
            for field in dataclasses.fields(node):  # type: ignore[arg-type]
                value = getattr(node, field.name)
                children = value if isinstance(value, tuple) else (value,)
                stack.extend(
                    (child, depth + 1) for child in children if dataclasses.is_dataclass(child)
                )

    def too_deep(self, span: Span | None = None) -> UsqlError:
        return UsqlError(
            ErrorCode.NOT_SUPPORTED,
            f"not supported: expressions more than {MAX_DEPTH} operators deep (a chain like "
            "a + b + ... or c1 ? v1 : c2 ? ... is as deep as it is long); compute parts in "
            "an earlier SELECT and combine those, or write it flatter",
            script=self.script,
            span=span or self.tok.span,
            source=self.source,
        )

    def _chained(self, parse: Callable[[], n.Expr], operator: Token) -> n.Expr:
        """``parse()`` the operand of ``operator``, one level deeper in a recursive chain
        (unary, cast, ?:, ??)."""
        if self.chain >= MAX_DEPTH:
            raise self.too_deep(operator.span)
        self.chain += 1
        try:
            return parse()
        finally:
            self.chain -= 1

    def parse_conditional(self) -> n.Expr:
        cond = self.parse_coalesce()
        if self.tok.is_op("?"):
            token = self.next()
            then = self._chained(self.parse_conditional, token)
            self.expect_op(":")
            otherwise = self._chained(self.parse_conditional, token)
            return n.Conditional(cond, then, otherwise, token.span)
        if self.tok.is_op("=>"):
            raise self.unsupported("lambda expressions")
        return cond

    def parse_coalesce(self) -> n.Expr:
        left = self.parse_or()
        if self.tok.is_op("??"):
            token = self.next()
            right = self._chained(self.parse_coalesce, token)  # right-associative
            return n.Binary("??", left, right, token.span)
        return left

    def parse_or(self) -> n.Expr:
        left = self.parse_and()
        while self.tok.is_op("||") or self.tok.is_keyword("OR"):
            token = self.next()
            left = n.Binary("||", left, self.parse_and(), token.span)
        return left

    def parse_and(self) -> n.Expr:
        left = self.parse_bitor()
        while self.tok.is_op("&&") or self.tok.is_keyword("AND"):
            token = self.next()
            left = n.Binary("&&", left, self.parse_bitor(), token.span)
        return left

    def parse_bitor(self) -> n.Expr:
        left = self.parse_bitxor()
        while self.tok.is_op("|"):
            token = self.next()
            left = n.Binary("|", left, self.parse_bitxor(), token.span)
        return left

    def parse_bitxor(self) -> n.Expr:
        left = self.parse_bitand()
        while self.tok.is_op("^"):
            token = self.next()
            left = n.Binary("^", left, self.parse_bitand(), token.span)
        return left

    def parse_bitand(self) -> n.Expr:
        left = self.parse_equality()
        while self.tok.is_op("&"):
            token = self.next()
            left = n.Binary("&", left, self.parse_equality(), token.span)
        return left

    def parse_equality(self) -> n.Expr:
        left = self.parse_relational()
        while self.tok.is_op("==", "!="):
            token = self.next()
            left = n.Binary(str(token.value), left, self.parse_relational(), token.span)
        return left

    def parse_relational(self) -> n.Expr:
        left = self.parse_additive()
        while True:
            token = self.tok
            if token.is_op("<", ">", "<=", ">="):
                self.next()
                left = n.Binary(str(token.value), left, self.parse_additive(), token.span)
            elif token.is_keyword("IS"):
                self.next()
                negated = bool(self.accept_keyword("NOT"))
                self.expect_keyword("NULL")
                left = n.IsNull(left, negated, token.span)
            elif token.is_keyword("IN", "BETWEEN", "LIKE") or (
                token.is_keyword("NOT") and self.peek().is_keyword("IN", "BETWEEN", "LIKE")
            ):
                negated = bool(self.accept_keyword("NOT"))
                left = self.parse_sql_predicate(left, negated, token)
            elif token.kind is TokenKind.IDENT and token.value in ("is", "as"):
                raise self.unsupported(f"the C# '{token.value}' operator", token)
            else:
                return left

    def parse_sql_predicate(self, left: n.Expr, negated: bool, start: Token) -> n.Expr:
        word = self.next()
        if word.is_keyword("IN"):
            self.expect_op("(")
            if self.tok.is_keyword("SELECT"):
                raise self.unsupported("IN with a subquery (use SEMIJOIN)")
            items = [self.parse_expr()]
            while self.accept_op(","):
                items.append(self.parse_expr())
            self.expect_op(")")
            return n.InList(left, tuple(items), negated, start.span)
        if word.is_keyword("BETWEEN"):
            low = self.parse_additive()
            self.expect_keyword("AND")
            high = self.parse_additive()
            return n.Between(left, low, high, negated, start.span)
        pattern = self.parse_additive()
        return n.Like(left, pattern, negated, start.span)

    def parse_additive(self) -> n.Expr:
        left = self.parse_multiplicative()
        while self.tok.is_op("+", "-"):
            token = self.next()
            left = n.Binary(str(token.value), left, self.parse_multiplicative(), token.span)
        return left

    def parse_multiplicative(self) -> n.Expr:
        left = self.parse_unary()
        while self.tok.is_op("*", "/", "%"):
            token = self.next()
            left = n.Binary(str(token.value), left, self.parse_unary(), token.span)
        return left

    def parse_unary(self) -> n.Expr:
        token = self.tok
        if token.is_op("!", "-", "+", "~"):
            self.next()
            operand = self._chained(self.parse_unary, token)
            if token.value == "-" and isinstance(operand, n.Literal) and _is_number(operand):
                return n.Literal(-operand.value, operand.kind, token.span)  # type: ignore[operator]
            return n.Unary(str(token.value), operand, token.span)
        if token.is_keyword("NOT"):
            self.next()
            return n.Unary("!", self._chained(self.parse_unary, token), token.span)
        if token.is_op("(") and self.looks_like_cast():
            self.next()
            type_ref = self.parse_type()
            self.expect_op(")")
            return n.Cast(type_ref, self._chained(self.parse_unary, token), token.span)
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, expr: n.Expr) -> n.Expr:
        while True:
            token = self.tok
            if token.is_op("."):
                self.next()
                name, name_tok = self.identifier("a member name")
                expr = n.Member(expr, name, name_tok.span)
            elif token.is_op("("):
                self.next()
                args = self.parse_call_args()
                expr = n.Call(expr, args, _span_of(expr) or token.span)
            elif token.is_op("["):
                self.next()
                index = self.parse_expr()
                self.expect_op("]")
                expr = n.Index(expr, index, token.span)
            elif token.is_op("++", "--"):
                raise self.unsupported("increment/decrement operators", token)
            else:
                return expr

    def parse_call_args(self) -> tuple[n.Expr, ...]:
        args: list[n.Expr] = []
        if self.accept_op(")"):
            return ()
        while True:
            if self.tok.kind is TokenKind.IDENT and self.peek().is_op(":"):
                raise self.unsupported("named arguments in C# method calls")
            if self.tok.kind is TokenKind.IDENT and self.tok.value in ("out", "ref"):
                raise self.unsupported(f"'{self.tok.value}' arguments")
            args.append(self.parse_expr())
            if self.accept_op(")"):
                return tuple(args)
            self.expect_op(",")

    def parse_primary(self) -> n.Expr:
        token = self.tok
        kind = token.kind
        if kind is TokenKind.NUMBER:
            self.next()
            return _number_literal(token)
        if kind is TokenKind.STRING:
            self.next()
            return n.Literal(token.value, n.LiteralKind.STRING, token.span)
        if kind is TokenKind.CHAR:
            self.next()
            return n.Literal(token.value, n.LiteralKind.CHAR, token.span)
        if kind is TokenKind.VARIABLE:
            self.next()
            return n.Variable(str(token.value), token.span)
        if kind is TokenKind.SYSTEM_VARIABLE:
            raise self.unsupported(f"system variable @@{token.value}", token)
        if token.is_keyword("NULL"):
            self.next()
            return n.Literal(None, n.LiteralKind.NULL, token.span)
        if token.is_op("("):
            self.next()
            if self.tok.is_keyword("SELECT"):
                raise self.unsupported("scalar subqueries", self.tok)
            inner = self.parse_expr()
            self.expect_op(")")
            return inner
        if kind is TokenKind.IDENT:
            return self.parse_identifier_primary(token)
        if kind is TokenKind.QUOTED_IDENT:
            self.next()
            return n.Name(str(token.value), token.span)
        if token.is_keyword("CASE"):
            raise self.unsupported("CASE expressions (use the C# ?: operator)", token)
        if token.kind is TokenKind.KEYWORD and self.peek().is_op("("):
            raise self.unsupported(f"function {token.value}", token)
        raise self.error(f"expected an expression but found {self.describe(token)}")

    def parse_identifier_primary(self, token: Token) -> n.Expr:
        word = str(token.value)
        if word in ("true", "false"):
            self.next()
            return n.Literal(word == "true", n.LiteralKind.BOOL, token.span)
        if word == "null":
            self.next()
            return n.Literal(None, n.LiteralKind.NULL, token.span)
        if word == "new":
            self.next()
            if self.tok.is_op("{") or self.tok.is_op("["):
                raise self.unsupported("anonymous types and implicitly typed arrays", token)
            type_ref = self.parse_type()
            if self.tok.is_op("{"):
                raise self.unsupported("object and collection initializers", self.tok)
            self.expect_op("(")
            args = self.parse_call_args()
            if self.tok.is_op("{"):
                raise self.unsupported("object and collection initializers", self.tok)
            return n.New(type_ref, args, token.span)
        if word in ("typeof", "sizeof", "checked", "unchecked", "default", "this", "base"):
            raise self.unsupported(f"C# '{word}'", token)
        if word in AGGREGATES and self.peek().is_op("("):
            return self.parse_aggregate(token)
        if word in _UNSUPPORTED_AGGREGATES and self.peek().is_op("("):
            raise self.unsupported(f"{word} (window and statistical functions)", token)
        self.next()
        return n.Name(word, token.span)

    def parse_aggregate(self, token: Token) -> n.Expr:
        self.next()
        self.expect_op("(")
        distinct = bool(self.accept_keyword("DISTINCT"))
        arg: n.Expr | None
        if self.tok.is_op("*"):
            if token.value != "COUNT" or distinct:
                raise self.error(f"'*' is only allowed in COUNT(*), not {token.value}")
            self.next()
            arg = None
        else:
            arg = self.parse_expr()
        if self.tok.is_op(","):
            raise self.unsupported(f"{token.value} with more than one argument")
        self.expect_op(")")
        if self.tok.is_keyword("OVER"):
            raise self.unsupported("windowed aggregates (OVER)", self.tok)
        return n.Aggregate(str(token.value), arg, distinct, token.span)


def _is_number(literal: n.Literal) -> bool:
    return literal.kind in (
        n.LiteralKind.INT,
        n.LiteralKind.LONG,
        n.LiteralKind.FLOAT,
        n.LiteralKind.DOUBLE,
        n.LiteralKind.DECIMAL,
    )


def _span_of(expr: n.Expr) -> Span | None:
    return getattr(expr, "span", None)


def _number_literal(token: Token) -> n.Literal:
    value = token.value
    suffix = token.suffix
    if isinstance(value, Decimal) or suffix in ("F", "D", "M"):
        if suffix == "M":
            return n.Literal(Decimal(value), n.LiteralKind.DECIMAL, token.span)  # type: ignore[arg-type]
        kind = n.LiteralKind.FLOAT if suffix == "F" else n.LiteralKind.DOUBLE
        return n.Literal(float(value), kind, token.span)  # type: ignore[arg-type]
    assert isinstance(value, int)
    if suffix in ("L", "UL", "LU") or value > 2**31 - 1:
        return n.Literal(value, n.LiteralKind.LONG, token.span)
    return n.Literal(value, n.LiteralKind.INT, token.span)
