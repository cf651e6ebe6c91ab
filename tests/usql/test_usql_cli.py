"""``azhpc usql run`` as a user runs it: a subprocess, exit codes, stdout and stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """DECLARE EXTERNAL @region string = "en-us";
@searchlog = EXTRACT UserId int, Start DateTime, Region string, Query string,
        Duration int, Urls string, ClickedUrls string
    FROM "/Samples/Data/SearchLog.tsv" USING Extractors.Tsv();
@r = SELECT Region, COUNT(*) AS n FROM @searchlog WHERE Region == @region GROUP BY Region;
OUTPUT @r TO "/output/region.csv" USING Outputters.Csv();
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azhpc.cli", "usql", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_success_prints_outputs_and_exits_0(lake: Path, tmp_path: Path) -> None:
    script = tmp_path / "region.usql"
    script.write_text(SCRIPT)
    done = _cli(str(script), "--lake-root", str(lake), "--param", "region=en-gb")
    assert done.returncode == 0, done.stderr
    assert (lake / "output" / "region.csv").read_bytes() == b'"en-gb",2\r\n'
    assert done.stdout.splitlines()[0].startswith("/output/region.csv\t1 rows\t")
    assert "Ended/Succeeded" in done.stdout


def test_cli_syntax_error_first_stderr_line(lake: Path, tmp_path: Path) -> None:
    script = tmp_path / "bad.usql"
    script.write_text("@a = SELECT * FROM (VALUES (1)) AS T(a);\n@b = SELECT a\n   FRM @a;\n")
    done = _cli(str(script), "--lake-root", str(lake))
    assert done.returncode != 0
    first, source, caret = done.stderr.splitlines()[:3]
    assert first.startswith(f"{script}:3:4: E_CSC_USER_SYNTAXERROR: ")
    assert source == "   FRM @a;" and caret == "   ^^^"


def test_cli_runtime_error_exits_1(lake: Path, tmp_path: Path) -> None:
    script = tmp_path / "missing.usql"
    script.write_text(SCRIPT.replace("SearchLog.tsv", "Nope.tsv"))
    done = _cli(str(script), "--lake-root", str(lake), "--parallelism", "2")
    assert done.returncode == 1
    assert done.stderr.startswith(f"{script}:2:1: E_STORE_USER_FILENOTFOUND: ")


def test_cli_script_not_utf8_says_where_and_what_to_do(lake: Path, tmp_path: Path) -> None:
    script = tmp_path / "latin1.usql"
    text = '@a = SELECT * FROM (VALUES ("café")) AS T(a);\nOUTPUT @a TO "/o.csv" USING x;\n'
    script.write_bytes(text.encode("cp1252"))
    done = _cli(str(script), "--lake-root", str(lake))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"{script}:1:33: E_AZHPC_USQL_SCRIPT: the script is not UTF-8 text")
    assert "byte 0xe9" in first and "save it as UTF-8" in first
