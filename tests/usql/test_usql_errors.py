"""Compile and run time errors: codes, positions, files and rows; no partial outputs."""

from __future__ import annotations

import pytest

import azhpc.usql as usql
from azhpc.usql.errors import ErrorCode

EXTRACT = """@searchlog =
    EXTRACT UserId int, Start DateTime, Region string, Query string, Duration int?,
            Urls string, ClickedUrls string
    FROM "/Samples/Data/SearchLog.tsv"
    USING Extractors.Tsv();
"""


def compile_error(script: str) -> usql.UsqlError:
    with pytest.raises(usql.UsqlError) as info:
        usql.compile(script, name="e.usql")
    return info.value


def test_errors_unknown_rowset() -> None:
    error = compile_error(EXTRACT + "@r = SELECT * FROM @searchlg;")
    assert error.code is ErrorCode.UNKNOWN_ROWSET
    assert (error.line, error.column) == (6, 20)
    assert "@searchlg" in error.message and "@searchlog" in error.message


def test_errors_unknown_column_lists_available_ones() -> None:
    error = compile_error(EXTRACT + "@r = SELECT Regoin FROM @searchlog;")
    assert error.code is ErrorCode.UNKNOWN_COLUMN
    assert (error.line, error.column) == (6, 13)
    assert "Regoin" in error.message and "Region" in error.message
    assert str(error).splitlines()[2] == " " * 12 + "^" * 6


def test_errors_column_names_are_case_sensitive() -> None:
    error = compile_error(EXTRACT + "@r = SELECT region FROM @searchlog;")
    assert error.code is ErrorCode.UNKNOWN_COLUMN


@pytest.mark.parametrize(
    ("expr", "column"),
    [
        ('UserId == "x"', 20),
        ('Region < "m"', 20),
        ("Duration && true", 22),
        ("(string)UserId", 13),
    ],
)
def test_errors_type_mismatch(expr: str, column: int) -> None:
    error = compile_error(EXTRACT + f"@r = SELECT {expr} AS x FROM @searchlog;")
    assert error.code is ErrorCode.TYPE_MISMATCH
    assert (error.line, error.column) == (6, column)


def test_errors_not_grouped_and_order_by_without_fetch() -> None:
    error = compile_error(
        EXTRACT + "@r = SELECT Region, Query, COUNT(*) AS n FROM @searchlog GROUP BY Region;"
    )
    assert error.code is ErrorCode.NOT_GROUPED and "Query" in error.message
    error = compile_error(EXTRACT + "@r = SELECT Region FROM @searchlog ORDER BY Region;")
    assert error.code is ErrorCode.ORDER_BY_WITHOUT_FETCH


def test_errors_unsupported_construct_in_binder() -> None:
    error = compile_error(EXTRACT + "@r = SELECT Region.PadLeft(3) AS p FROM @searchlog;")
    assert error.code is ErrorCode.NOT_SUPPORTED
    assert "not supported" in error.message and "PadLeft" in error.message
    error = compile_error("REFERENCE ASSEMBLY MyUdos;")
    assert error.code is ErrorCode.NOT_SUPPORTED


def test_errors_invalid_extractor_argument() -> None:
    error = compile_error(EXTRACT.replace("Extractors.Tsv()", "Extractors.Tsv(skipRows: 1)"))
    assert error.code is ErrorCode.INVALID_UDO_ARGUMENT and "skipFirstNRows" in error.message


def test_errors_redeclared_variable_and_param_conflict() -> None:
    error = compile_error("DECLARE @a = 1;\nDECLARE @a = 2;")
    assert error.code is ErrorCode.VARIABLE_REDECLARED and error.line == 2
    with pytest.raises(usql.UsqlError) as info:
        usql.compile("DECLARE @a = 1;", params={"a": 2})
    assert info.value.code is ErrorCode.VARIABLE_REDECLARED


def write(lake, path: str, text: str) -> None:
    target = lake / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


BAD = """@r = EXTRACT a int, b DateTime, c string FROM "/in/bad.csv" USING Extractors.Csv({opts});
OUTPUT @r TO "/out/r.csv" USING Outputters.Csv();
"""


def test_errors_conversion_failure_names_file_and_row(run, lake) -> None:
    write(lake, "/in/bad.csv", "1,1/2/2012,x\n2,2012-01-03,y\nthree,1/4/2012,z\n4,nope,w\n")
    with pytest.raises(usql.UsqlError) as info:
        run(BAD.format(opts=""))
    error = info.value
    assert error.code is ErrorCode.CONVERSION
    assert (error.file, error.row) == ("/in/bad.csv", 3)
    assert "'three'" in error.message and "'a'" in error.message
    assert error.line == 1
    assert not (lake / "out" / "r.csv").exists()


def test_errors_silent_skips_bad_rows(run, lake) -> None:
    write(
        lake,
        "/in/bad.csv",
        "1,1/2/2012,x\n2,2012-01-03,y\nthree,1/4/2012,z\n4,nope,w\n5,1/5/2012\n",
    )
    run(BAD.format(opts="silent: true"))
    assert (lake / "out" / "r.csv").read_bytes().decode() == (
        '1,2012-01-02T00:00:00.0000000,"x"\n2,2012-01-03T00:00:00.0000000,"y"\n'
    ).replace("\n", "\r\n")


def test_errors_column_count_mismatch_names_row(run, lake) -> None:
    write(lake, "/in/bad.csv", "1,1/2/2012,x\n2,1/3/2012\n")
    with pytest.raises(usql.UsqlError) as info:
        run(BAD.format(opts=""))
    assert info.value.code is ErrorCode.COLUMN_COUNT
    assert (info.value.file, info.value.row) == ("/in/bad.csv", 2)


def test_errors_null_for_non_nullable_column(run, lake) -> None:
    write(lake, "/in/bad.csv", '1,1/2/2012,x\n,1/3/2012,""\n')
    with pytest.raises(usql.UsqlError) as info:
        run(BAD.format(opts=""))
    assert info.value.row == 2 and "nullable" in info.value.message


def test_errors_csharp_runtime_exception_has_position(run, lake) -> None:
    script = """@t = SELECT * FROM (VALUES (1, "a"), (0, (string)null)) AS T(n, s);
@r = SELECT 10 / n AS q FROM @t;
OUTPUT @r TO "/o.csv" USING Outputters.Csv();
@r2 = SELECT s.ToUpper() AS u FROM @t;
OUTPUT @r2 TO "/o2.csv" USING Outputters.Csv();
"""
    with pytest.raises(usql.UsqlError) as info:
        run(script)
    assert info.value.code is ErrorCode.EXPRESSION
    assert "DivideByZeroException" in info.value.message
    assert (info.value.line, info.value.column) == (2, 16)
    with pytest.raises(usql.UsqlError) as info:
        run(script.replace("10 / n", "10 / (n + 1)"))
    assert "NullReferenceException" in info.value.message and info.value.line == 4
    assert not (lake / "o.csv").exists()


def test_errors_missing_input_file(run) -> None:
    with pytest.raises(usql.UsqlError) as info:
        run(
            '@r = EXTRACT a int FROM "/nope.csv" USING Extractors.Csv();\n'
            'OUTPUT @r TO "/o.csv" USING Outputters.Csv();'
        )
    assert info.value.code is ErrorCode.FILE_NOT_FOUND and "/nope.csv" in info.value.message


def test_errors_pickle_keeps_fields() -> None:
    import pickle

    error = compile_error(EXTRACT + "@r = SELECT nope FROM @searchlog;")
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.code, clone.line, clone.column, str(clone)) == (
        error.code,
        error.line,
        error.column,
        str(error),
    )


def _select(expr: str) -> str:
    return (
        f"@r = SELECT\n    {expr} AS a\n    FROM (VALUES (1)) AS T(x);\n"
        'OUTPUT @r TO "/o.csv" USING Outputters.Csv();\n'
    )


@pytest.mark.parametrize(
    ("expr", "column"),
    [
        # 1,000 parentheses: refused at the 33rd, where nesting got too deep.
        ("(" * 1000 + "1" + ")" * 1000, 5 + 33),
        # 1,000 nested calls: the argument of the 33rd call.
        ("Math.Abs(" * 1000 + "1" + ")" * 1000, 5 + 33 * len("Math.Abs(")),
        # 1,000 unary operators: refused at the 151st.
        ("!" * 1000 + "true", 5 + 150),
        # A chain of 1,000 additions is a tree 999 deep (a + b is one level per operator).
        ("+".join(["1"] * 1000), 0),
        ("true ? 1 : " * 1000 + "2", 0),
    ],
)
def test_errors_too_deep_expression_is_refused_with_its_position(expr: str, column: int) -> None:
    error = compile_error(_select(expr))
    assert error.code is ErrorCode.NOT_SUPPORTED
    assert "RecursionError" not in str(error)
    assert error.line == 2 and error.column > 0
    if column:
        assert error.column == column
    assert "levels deep" in error.message or "operators deep" in error.message
    assert "earlier SELECT" in error.message
    assert str(error).splitlines()[1].startswith("    ")  # the source line, with a caret


@pytest.mark.parametrize(
    "expr",
    [
        "(" * 32 + "1" + ")" * 32,
        "Math.Abs(" * 32 + "1" + ")" * 32,
        "+".join(["1"] * 150),
        "!" * 149 + "true",
        "(" * 32 + "+".join(["1"] * 118) + ")" * 32,
    ],
)
def test_errors_deep_expression_within_the_limits_runs(run, expr: str) -> None:
    assert run(_select(expr)).outputs == {"/o.csv": 1}
