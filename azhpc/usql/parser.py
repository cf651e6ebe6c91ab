"""Recursive-descent parser: tokens to a :class:`~azhpc.usql.nodes.Script`.

Statements: ``DECLARE``, ``REFERENCE ASSEMBLY``, ``@rowset = query``, ``OUTPUT``. Queries:
``EXTRACT``, ``SELECT`` (with joins, ``CROSS APPLY EXPLODE``, ``WHERE``, ``GROUP BY``, ``HAVING``,
``ORDER BY ... FETCH``), set operations and ``REDUCE``. Anything else U-SQL has (DDL, ``PROCESS``,
``COMBINE``, ``INSERT``, ``IF``, ...) raises ``E_AZHPC_USQL_NOTSUPPORTED`` at its position.
"""

from __future__ import annotations

from azhpc.usql import nodes as n
from azhpc.usql.parse_expr import ExpressionParser
from azhpc.usql.tokens import Token, TokenKind, tokenize

__all__ = ["parse"]

_UNSUPPORTED_STATEMENTS = {
    "CREATE": "CREATE statements (catalog objects)",
    "DROP": "DROP statements (catalog objects)",
    "ALTER": "ALTER statements (catalog objects)",
    "USE": "USE DATABASE/SCHEMA (catalog)",
    "INSERT": "INSERT INTO (catalog tables)",
    "IF": "IF statements",
    "SET": "SET statements",
}


class Parser(ExpressionParser):
    """The U-SQL statement and query grammar on top of :class:`ExpressionParser`."""

    def parse_script(self, name: str) -> n.Script:
        statements: list[n.Statement] = []
        while self.tok.kind is not TokenKind.EOF:
            if self.accept_op(";"):
                continue
            statements.append(self.parse_statement())
            if not self.tok.is_op(";"):
                raise self.error(f"expected ';' but found {self.describe(self.tok)}")
            self.next()
        return n.Script(tuple(statements), self.source, name)

    # ------------------------------------------------------------------ statements
    def parse_statement(self) -> n.Statement:
        token = self.tok
        if token.is_keyword("DECLARE"):
            return self.parse_declare()
        if token.is_keyword("REFERENCE"):
            self.next()
            if self.accept_keyword("SYSTEM"):
                raise self.unsupported("REFERENCE SYSTEM ASSEMBLY", token)
            self.expect_keyword("ASSEMBLY")
            name, _ = self.identifier("an assembly name")
            while self.accept_op("."):
                part, _ = self.identifier("an assembly name")
                name += "." + part
            return n.ReferenceAssembly(name, token.span)
        if token.kind is TokenKind.VARIABLE:
            self.next()
            self.expect_op("=")
            query = self.parse_query()
            return n.Assign(str(token.value), query, token.span)
        if token.is_keyword("OUTPUT"):
            return self.parse_output()
        if token.kind is TokenKind.KEYWORD and token.value in _UNSUPPORTED_STATEMENTS:
            raise self.unsupported(_UNSUPPORTED_STATEMENTS[str(token.value)], token)
        if token.kind is TokenKind.KEYWORD and token.value in ("SELECT", "EXTRACT", "REDUCE"):
            raise self.error(f"a {token.value} expression must be assigned to a @rowset variable")
        raise self.error(f"expected a statement but found {self.describe(token)}")

    def parse_declare(self) -> n.Declare:
        start = self.next()
        external = bool(self.accept_keyword("EXTERNAL"))
        const = bool(self.accept_keyword("CONST"))
        if self.tok.is_keyword("EXTERNAL"):
            external = bool(self.next())
        if self.tok.kind is not TokenKind.VARIABLE:
            raise self.error(f"expected a @variable but found {self.describe(self.tok)}")
        name = str(self.next().value)
        type_ref = None
        if not self.tok.is_op("="):
            if self.tok.is_keyword("TABLE"):
                raise self.unsupported("table-typed variables", self.tok)
            type_ref = self.parse_type()
        self.expect_op("=")
        value = self.parse_expr()
        return n.Declare(name, type_ref, value, external, const, start.span)

    def parse_output(self) -> n.Output:
        start = self.next()
        rowset = self.parse_rowset_ref()
        self.expect_keyword("TO")
        path = self.parse_expr()
        order: tuple[n.OrderItem, ...] = ()
        if self.tok.is_keyword("ORDER"):
            order = self.parse_order_by()
        using = self.parse_using()
        return n.Output(rowset, path, order, using, start.span)

    def parse_rowset_ref(self) -> n.RowsetSource:
        token = self.tok
        if token.kind is TokenKind.VARIABLE:
            self.next()
            return n.RowsetSource(str(token.value), None, token.span)
        if token.kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT):
            raise self.unsupported(f"catalog tables ('{token.value}')", token)
        raise self.error(f"expected a @rowset but found {self.describe(token)}")

    def parse_using(self) -> n.UdoCall:
        self.expect_keyword("USING")
        start = self.tok
        new = False
        if start.kind is TokenKind.IDENT and start.value == "new":
            self.next()
            new = True
        name, _ = self.identifier("an extractor, outputter or reducer")
        while self.accept_op("."):
            part, _ = self.identifier()
            name += "." + part
        if not self.tok.is_op("("):
            raise self.error(f"expected '(' after {name} but found {self.describe(self.tok)}")
        self.next()
        args: list[n.NamedArg] = []
        if not self.accept_op(")"):
            while True:
                arg_tok = self.tok
                arg_name = None
                if arg_tok.kind is TokenKind.IDENT and self.peek().is_op(":"):
                    arg_name = str(arg_tok.value)
                    self.next()
                    self.next()
                args.append(n.NamedArg(arg_name, self.parse_expr(), arg_tok.span))
                if self.accept_op(")"):
                    break
                self.expect_op(",")
        return n.UdoCall(name, tuple(args), new, start.span)

    # ------------------------------------------------------------------ queries
    def parse_query(self) -> n.Query:
        token = self.tok
        if token.is_keyword("EXTRACT"):
            return self.parse_extract()
        if token.is_keyword("REDUCE"):
            return self.parse_reduce()
        if token.is_keyword("SELECT") or token.is_op("("):
            return self.parse_set_expression()
        if token.is_keyword("PROCESS", "COMBINE"):
            raise self.unsupported(f"{token.value} expressions (C# user-defined operators)", token)
        if token.is_keyword("VALUES"):
            raise self.error("VALUES must appear in FROM as (VALUES ...) AS alias(columns)")
        if token.kind is TokenKind.IDENT and self.peek().is_op("("):
            raise self.unsupported(f"table-valued function {token.value}", token)
        raise self.error(f"expected a query expression but found {self.describe(token)}")

    def parse_set_expression(self) -> n.Query:
        left = self.parse_query_term()
        while self.tok.is_keyword("UNION", "INTERSECT", "EXCEPT") or (
            self.tok.is_keyword("OUTER") and self.peek().is_keyword("UNION")
        ):
            token = self.next()
            if token.is_keyword("OUTER"):
                raise self.unsupported("OUTER UNION", token)
            is_all = bool(self.accept_keyword("ALL"))
            if not is_all:
                self.accept_keyword("DISTINCT")
            if self.tok.is_keyword("BY"):
                raise self.unsupported(f"{token.value} BY NAME", self.tok)
            right = self.parse_query_term()
            left = n.SetOp(str(token.value), is_all, left, right, token.span)
        return left

    def parse_query_term(self) -> n.Query:
        if self.tok.is_op("("):
            self.next()
            inner = self.parse_set_expression()
            self.expect_op(")")
            return inner
        return self.parse_select()

    def parse_select(self) -> n.Select:
        start = self.expect_keyword("SELECT")
        distinct = bool(self.accept_keyword("DISTINCT"))
        if not distinct:
            self.accept_keyword("ALL")
        if self.tok.is_keyword("TOP"):
            raise self.unsupported("TOP (use ORDER BY ... FETCH)", self.tok)
        items = [self.parse_select_item()]
        while self.accept_op(","):
            items.append(self.parse_select_item())
        source = None
        joins: list[n.Join | n.Apply] = []
        if self.accept_keyword("FROM"):
            source = self.parse_source()
            joins = self.parse_joins()
        where = self.parse_expr() if self.accept_keyword("WHERE") else None
        group_by: tuple[n.Expr, ...] = ()
        if self.accept_keyword("GROUP"):
            self.expect_keyword("BY")
            exprs = [self.parse_expr()]
            while self.accept_op(","):
                exprs.append(self.parse_expr())
            group_by = tuple(exprs)
        having = self.parse_expr() if self.accept_keyword("HAVING") else None
        order: tuple[n.OrderItem, ...] = ()
        offset = fetch = None
        if self.tok.is_keyword("ORDER"):
            order = self.parse_order_by()
        if self.accept_keyword("OFFSET"):
            offset = self.parse_row_count()
            self.accept_keyword("ROW", "ROWS")
        if self.accept_keyword("FETCH"):
            self.accept_keyword("FIRST", "NEXT")
            fetch = self.parse_row_count()
            self.accept_keyword("ROW", "ROWS")
            self.accept_keyword("ONLY")
        if self.tok.is_keyword("OPTION"):
            raise self.unsupported("OPTION hints", self.tok)
        return n.Select(
            distinct,
            tuple(items),
            source,
            tuple(joins),
            where,
            group_by,
            having,
            order,
            offset,
            fetch,
            start.span,
        )

    def parse_row_count(self) -> int:
        token = self.tok
        if token.kind is not TokenKind.NUMBER or not isinstance(token.value, int):
            raise self.error(f"expected a row count but found {self.describe(token)}")
        self.next()
        return int(token.value)

    def parse_select_item(self) -> n.SelectItem | n.Star:
        token = self.tok
        if token.is_op("*"):
            self.next()
            return n.Star(None, token.span)
        if (
            token.kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT)
            and self.peek().is_op(".")
            and self.peek(2).is_op("*")
        ):
            self.next()
            self.next()
            self.next()
            return n.Star(str(token.value), token.span)
        expr = self.parse_expr()
        alias = None
        if self.accept_keyword("AS"):
            alias, _ = self.identifier("a column alias")
        return n.SelectItem(expr, alias, token.span)

    def parse_alias(self, required: bool) -> str | None:
        if self.accept_keyword("AS"):
            return self.identifier("an alias")[0]
        if self.tok.kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT):
            return self.identifier()[0]
        if required:
            raise self.error(f"expected AS alias but found {self.describe(self.tok)}")
        return None

    def parse_source(self) -> n.Source:
        token = self.tok
        if token.kind is TokenKind.VARIABLE:
            self.next()
            return n.RowsetSource(str(token.value), self.parse_alias(False), token.span)
        if token.is_op("("):
            self.next()
            if self.tok.is_keyword("VALUES"):
                return self.parse_values(token)
            query = self.parse_set_expression()
            self.expect_op(")")
            alias = self.parse_alias(True)
            assert alias is not None
            return n.SubquerySource(query, alias, token.span)
        if token.is_keyword("VALUES"):
            return self.parse_values(None)
        if token.kind is TokenKind.STRING:
            raise self.unsupported("FROM a file path in SELECT (use EXTRACT)", token)
        if token.kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT):
            if self.peek().is_op("("):
                raise self.unsupported(f"table-valued function {token.value}", token)
            raise self.unsupported(f"catalog tables ('{token.value}')", token)
        raise self.error(f"expected a rowset source but found {self.describe(token)}")

    def parse_values(self, paren: Token | None) -> n.ValuesSource:
        start = self.expect_keyword("VALUES")
        rows: list[tuple[n.Expr, ...]] = []
        while True:
            self.expect_op("(")
            row = [self.parse_expr()]
            while self.accept_op(","):
                row.append(self.parse_expr())
            self.expect_op(")")
            rows.append(tuple(row))
            if not self.accept_op(","):
                break
        if paren is not None:
            self.expect_op(")")
        self.expect_keyword("AS")
        alias, _ = self.identifier("an alias")
        self.expect_op("(")
        columns = [self.identifier("a column name")[0]]
        while self.accept_op(","):
            columns.append(self.identifier("a column name")[0])
        self.expect_op(")")
        return n.ValuesSource(tuple(rows), alias, tuple(columns), (paren or start).span)

    def parse_joins(self) -> list[n.Join | n.Apply]:
        joins: list[n.Join | n.Apply] = []
        while True:
            token = self.tok
            kind = self.parse_join_kind()
            if kind is None:
                if token.is_keyword("CROSS", "OUTER") and self.peek().is_keyword("APPLY"):
                    joins.append(self.parse_apply())
                    continue
                return joins
            source = self.parse_source()
            condition = None
            if kind is not n.JoinKind.CROSS:
                self.expect_keyword("ON")
                condition = self.parse_expr()
            joins.append(n.Join(kind, source, condition, token.span))

    def parse_join_kind(self) -> n.JoinKind | None:
        token = self.tok
        peek = self.peek()
        if token.is_keyword("JOIN"):
            self.next()
            return n.JoinKind.INNER
        if token.is_keyword("INNER") and peek.is_keyword("JOIN"):
            self.next()
            self.next()
            return n.JoinKind.INNER
        if token.is_keyword("CROSS") and peek.is_keyword("JOIN"):
            self.next()
            self.next()
            return n.JoinKind.CROSS
        if token.is_keyword("SEMIJOIN", "ANTISEMIJOIN"):
            self.next()
            return n.JoinKind.LEFT_SEMI if token.value == "SEMIJOIN" else n.JoinKind.LEFT_ANTI
        if token.is_keyword("LEFT", "RIGHT", "FULL"):
            side = str(token.value)
            if peek.is_keyword("SEMIJOIN", "ANTISEMIJOIN"):
                self.next()
                word = str(self.next().value)
                semi = word == "SEMIJOIN"
                if side == "FULL":
                    raise self.unsupported(f"FULL {word}", token)
                if side == "LEFT":
                    return n.JoinKind.LEFT_SEMI if semi else n.JoinKind.LEFT_ANTI
                return n.JoinKind.RIGHT_SEMI if semi else n.JoinKind.RIGHT_ANTI
            if peek.is_keyword("OUTER", "JOIN"):
                self.next()
                self.accept_keyword("OUTER")
                self.expect_keyword("JOIN")
                return {"LEFT": n.JoinKind.LEFT, "RIGHT": n.JoinKind.RIGHT}.get(
                    side, n.JoinKind.FULL
                )
        return None

    def parse_apply(self) -> n.Apply:
        start = self.next()
        outer = start.is_keyword("OUTER")
        self.expect_keyword("APPLY")
        if not self.tok.is_keyword("EXPLODE"):
            raise self.unsupported("CROSS APPLY with a C# applier (only EXPLODE)", self.tok)
        self.next()
        self.expect_op("(")
        expr = self.parse_expr()
        self.expect_op(")")
        self.expect_keyword("AS")
        alias, _ = self.identifier("an alias")
        self.expect_op("(")
        columns = [self.identifier("a column name")[0]]
        while self.accept_op(","):
            columns.append(self.identifier("a column name")[0])
        self.expect_op(")")
        return n.Apply(expr, alias, tuple(columns), outer, start.span)

    def parse_order_by(self) -> tuple[n.OrderItem, ...]:
        self.expect_keyword("ORDER")
        self.expect_keyword("BY")
        items = []
        while True:
            token = self.tok
            expr = self.parse_expr()
            descending = bool(self.accept_keyword("DESC"))
            if not descending:
                self.accept_keyword("ASC")
            items.append(n.OrderItem(expr, descending, token.span))
            if not self.accept_op(","):
                return tuple(items)

    def parse_extract(self) -> n.Extract:
        start = self.next()
        columns = [self.parse_column_def()]
        while self.accept_op(","):
            columns.append(self.parse_column_def())
        self.expect_keyword("FROM")
        paths = [self.parse_expr()]
        while self.accept_op(","):
            paths.append(self.parse_expr())
        using = self.parse_using()
        return n.Extract(tuple(columns), tuple(paths), using, start.span)

    def parse_column_def(self) -> n.ColumnDef:
        name, token = self.identifier("a column name")
        return n.ColumnDef(name, self.parse_type(), token.span)

    def parse_name_list(self) -> tuple[n.Name, ...]:
        names = []
        while True:
            name, token = self.identifier("a column name")
            names.append(n.Name(name, token.span))
            if not self.accept_op(","):
                return tuple(names)

    def parse_reduce(self) -> n.Reduce:
        start = self.next()
        if self.tok.is_op("("):
            raise self.unsupported("REDUCE over a nested query (assign it to a @rowset)", self.tok)
        source = self.parse_rowset_ref()
        presort: tuple[n.OrderItem, ...] = ()
        if self.accept_keyword("PRESORT"):
            presort = self.parse_presort()
        keys: tuple[n.Name, ...] | None
        if self.accept_keyword("ALL"):
            keys = None
        else:
            self.expect_keyword("ON")
            keys = self.parse_name_list()
        if self.accept_keyword("PRESORT"):
            presort = self.parse_presort()
        self.expect_keyword("PRODUCE")
        produce = [self.parse_column_def()]
        while self.accept_op(","):
            produce.append(self.parse_column_def())
        readonly: tuple[n.Name, ...] = ()
        required: tuple[n.Name, ...] = ()
        if self.accept_keyword("READONLY"):
            readonly = self.parse_star_or_names()
        if self.accept_keyword("REQUIRED"):
            required = self.parse_star_or_names()
        using = self.parse_using()
        return n.Reduce(
            source, keys, presort, tuple(produce), readonly, required, using, start.span
        )

    def parse_presort(self) -> tuple[n.OrderItem, ...]:
        items = []
        while True:
            name, token = self.identifier("a column name")
            descending = bool(self.accept_keyword("DESC"))
            if not descending:
                self.accept_keyword("ASC")
            items.append(n.OrderItem(n.Name(name, token.span), descending, token.span))
            if not self.accept_op(","):
                return tuple(items)

    def parse_star_or_names(self) -> tuple[n.Name, ...]:
        if self.tok.is_op("*"):
            token = self.next()
            return (n.Name("*", token.span),)
        return self.parse_name_list()


def parse(source: str, name: str = "script.usql") -> n.Script:
    """Parse a U-SQL script.

    Parameters
    ----------
    source : str
        The script text.
    name : str
        The script's name, used in error messages.

    Returns
    -------
    Script

    Raises
    ------
    UsqlError
        ``E_CSC_USER_SYNTAXERROR`` at the first token that does not fit the grammar, or
        ``E_AZHPC_USQL_NOTSUPPORTED`` for a construct azhpc does not run.
    """
    tokens = tokenize(source, name)
    return Parser(tokens, source, name).parse_script(name)
