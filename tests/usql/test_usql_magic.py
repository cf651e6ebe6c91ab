"""``%%usql`` in a real IPython shell: --show, --param, --out, error rendering."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import azhpc.usql as usql

SCRIPT = """DECLARE EXTERNAL @region string = "en-us";
@searchlog = EXTRACT UserId int, Start DateTime, Region string, Query string,
        Duration int, Urls string, ClickedUrls string
    FROM "/Samples/Data/SearchLog.tsv" USING Extractors.Tsv();
@r = SELECT UserId, Query FROM @searchlog WHERE Region == @region;
@n = SELECT COUNT(*) AS n FROM @r;
OUTPUT @n TO "/output/n.csv" USING Outputters.Csv();
"""


@pytest.fixture
def shell(lake: Path, monkeypatch) -> InteractiveShell:
    monkeypatch.setenv("AZHPC_LAKE_ROOT", str(lake))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "azhpc")
    return ip


def test_usql_magic_shows_rowsets_and_takes_params(shell, lake: Path, capsys) -> None:
    shell.run_cell_magic("usql", "--show @r --show n --param region=en-gb", SCRIPT)
    printed = capsys.readouterr().out
    shown = shell.user_ns["_usql"]
    assert set(shown) == {"@r", "@n"}
    assert isinstance(shown["@r"], pd.DataFrame) and len(shown["@r"]) == 2
    assert list(shown["@r"].columns) == ["UserId", "Query"]
    assert shown["@n"].n.tolist() == [2]
    assert (lake / "output" / "n.csv").read_bytes() == b"2\r\n"
    assert "[3/4] query" in printed or "output" in printed
    assert "Ended/Succeeded" in printed and "/output/n.csv (1 rows)" in printed
    job = shell.user_ns["_usql_job"]
    assert isinstance(job, usql.UsqlJob) and job.outcome is usql.JobResult.SUCCEEDED


def test_usql_magic_out_and_parallelism(shell, capsys) -> None:
    shell.run_cell_magic("usql", "--show @n --out counts --parallelism 2 --quiet", SCRIPT)
    assert shell.user_ns["counts"]["@n"].n.tolist() == [16]
    assert "Ended" not in capsys.readouterr().out


def test_usql_magic_renders_the_error_position(shell, capsys) -> None:
    result = shell.run_cell(
        "%%usql --name bad.usql\n@a = SELECT * FROM (VALUES (1)) AS T(a);\n"
        "@b = SELECT a\n   FRM @a;\n"
    )
    error = result.error_in_exec
    assert isinstance(error, usql.UsqlError)
    assert (error.line, error.column) == (3, 4)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "bad.usql:3:4: E_CSC_USER_SYNTAXERROR" in text
    assert "   FRM @a;\n   ^^^" in text
    assert "Traceback" not in text and "session_jobs.py" not in text


def test_usql_magic_help_lists_flags(shell) -> None:
    doc = shell.find_cell_magic("usql").__doc__
    for flag in ("--show", "--param", "--parallelism", "--out"):
        assert flag in doc
