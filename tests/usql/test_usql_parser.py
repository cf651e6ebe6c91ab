"""Parser: statement shapes, syntax errors with positions, unsupported constructs."""

from __future__ import annotations

import pytest

from azhpc.usql import nodes as n
from azhpc.usql.errors import ErrorCode, UsqlError
from azhpc.usql.parser import parse


def test_parser_declare_forms() -> None:
    script = parse(
        'DECLARE EXTERNAL @in string = "/a";\nDECLARE CONST @n int? = 3;\nDECLARE @s = @"x";'
    )
    first, second, third = script.statements
    assert isinstance(first, n.Declare) and first.external and first.type.name == "string"
    assert second.const and second.type.nullable
    assert third.type is None and third.value == n.Literal("x", n.LiteralKind.STRING)


def test_parser_extract_with_fileset_and_options() -> None:
    (stmt,) = parse(
        '@r = EXTRACT a int, b string FROM "/x/{b}.csv", "/y.csv" '
        "USING Extractors.Text(delimiter: '|', skipFirstNRows: 1);"
    ).statements
    query = stmt.query
    assert isinstance(query, n.Extract)
    assert [c.name for c in query.columns] == ["a", "b"]
    assert len(query.paths) == 2
    assert query.using.name == "Extractors.Text"
    assert [a.name for a in query.using.args] == ["delimiter", "skipFirstNRows"]


def test_parser_operator_precedence() -> None:
    (stmt,) = parse("@r = SELECT a + b * c == d && !e || f ?? g AS x FROM @t;").statements
    expr = stmt.query.items[0].expr
    assert isinstance(expr, n.Binary) and expr.op == "??"
    left = expr.left
    assert left.op == "||" and left.left.op == "&&"
    equality = left.left.left
    assert equality.op == "==" and equality.left.op == "+" and equality.left.right.op == "*"


def test_parser_cast_versus_parenthesis() -> None:
    (stmt,) = parse("@r = SELECT (int?) a AS x, (a) + 1 AS y, (double)(a) AS z FROM @t;").statements
    x, y, z = (i.expr for i in stmt.query.items)
    assert isinstance(x, n.Cast) and x.type.nullable
    assert isinstance(y, n.Binary)
    assert isinstance(z, n.Cast)


def test_parser_sql_predicates() -> None:
    (stmt,) = parse(
        '@r = SELECT * FROM @t WHERE a IN (1, 2) AND b NOT LIKE "x%" AND c BETWEEN 1 AND 3 '
        "AND d IS NOT NULL;"
    ).statements
    where = stmt.query.where
    parts = []
    while isinstance(where, n.Binary) and where.op == "&&":
        parts.append(where.right)
        where = where.left
    parts.append(where)
    assert {type(p).__name__ for p in parts} == {"InList", "Like", "Between", "IsNull"}


def test_parser_joins_apply_and_set_operations() -> None:
    (stmt,) = parse(
        "@r = SELECT a.x FROM @a AS a LEFT OUTER JOIN @b AS b ON a.x == b.x "
        "LEFT SEMIJOIN @c AS c ON a.x == c.x "
        "CROSS APPLY EXPLODE(a.arr) AS e(v) "
        "UNION ALL SELECT x FROM @d;"
    ).statements
    query = stmt.query
    assert isinstance(query, n.SetOp) and query.all
    kinds = [j.kind if isinstance(j, n.Join) else "apply" for j in query.left.joins]
    assert kinds == [n.JoinKind.LEFT, n.JoinKind.LEFT_SEMI, "apply"]


def test_parser_reduce() -> None:
    (stmt,) = parse(
        "@m = REDUCE @t ON date PRESORT time PRODUCE date string, n int READONLY date "
        "USING new Extension.Python.Reducer(pyScript:@s);"
    ).statements
    query = stmt.query
    assert isinstance(query, n.Reduce)
    assert [k.name for k in query.keys] == ["date"]
    assert [c.name for c in query.produce] == ["date", "n"]
    assert query.using.new and query.using.args[0].name == "pyScript"


def test_parser_order_by_fetch_and_output() -> None:
    script = parse(
        "@r = SELECT * FROM @t ORDER BY a DESC OFFSET 2 ROWS FETCH 5 ROWS;\n"
        'OUTPUT @r TO "/o.csv" ORDER BY a USING Outputters.Csv(outputHeader: true);'
    )
    select, output = script.statements
    assert select.query.fetch == 5 and select.query.offset == 2
    assert select.query.order_by[0].descending
    assert isinstance(output, n.Output) and output.order_by[0].expr == n.Name("a")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("@r = SELECT a\nFROM @t\nWHERE a == ;", 3, 12),
        ("@r =\n  SELECT a b c FROM @t;", 2, 12),
        (
            '@r = EXTRACT a int FROM "/x"\nUSING Extractors.Csv()\n'
            'OUTPUT @r TO "/y" USING Outputters.Csv();',
            3,
            1,
        ),
        ("DECLARE @x int 3;", 1, 16),
    ],
)
def test_parser_syntax_error_reports_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(UsqlError) as info:
        parse(text, "job.usql")
    error = info.value
    assert error.code is ErrorCode.SYNTAX
    assert (error.line, error.column) == (line, column)
    head, source_line, caret = str(error).splitlines()[:3]
    assert head.startswith(f"job.usql:{line}:{column}: E_CSC_USER_SYNTAXERROR: ")
    assert source_line == text.splitlines()[line - 1]
    assert caret.index("^") == column - 1


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("CREATE TABLE T(a int);", "CREATE"),
        ("@r = PROCESS @t PRODUCE a int USING new X();", "PROCESS"),
        ("@r = SELECT ROW_NUMBER() OVER() AS n FROM @t;", "ROW_NUMBER"),
        ("@r = SELECT COUNT(*) OVER(PARTITION BY a) AS n FROM @t;", "OVER"),
        ("@r = SELECT (x => x) AS f FROM @t;", "lambda"),
        ("@r = SELECT * FROM dbo.T;", "catalog tables"),
        ("@r = SELECT * FROM @t OUTER UNION SELECT * FROM @u;", "OUTER UNION"),
    ],
)
def test_parser_unsupported_construct_is_named(text: str, what: str) -> None:
    with pytest.raises(UsqlError) as info:
        parse(text)
    assert info.value.code is ErrorCode.NOT_SUPPORTED
    assert "not supported" in info.value.message and what in info.value.message
    assert info.value.line == 1 and info.value.column > 0
