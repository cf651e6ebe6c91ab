"""U-SQL jobs on a session: run/submit, ADLA's states and results, REDUCE on the pool."""

from __future__ import annotations

import os
import sys
import threading
import types
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import azhpc
import azhpc.lake
import azhpc.usql as usql
from azhpc.lake import RootedFileSystem
from azhpc.usql import ErrorCode, JobResult, JobState

MENTIONS = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @myScript = @"
import os
def get_mentions(tweet):
    return ';'.join( ( w[1:] for w in tweet.split() if w[0]=='@' ) )

def usqlml_main(df):
    del df['time']
    del df['author']
    df['mentions'] = df.tweet.apply(get_mentions)
    df['pid'] = os.getpid()
    del df['tweet']
    return df
";
@t = EXTRACT date string, time string, author string, tweet string
     FROM "/Samples/Data/Tweets/{*}.csv"
     USING Extractors.Csv();
@m = REDUCE @t ON author
     PRODUCE date string, mentions string, pid int
     USING new Extension.Python.Reducer(pyScript:@myScript);
OUTPUT @m TO "/output/mentions.csv" USING Outputters.Csv();
"""

SIMPLE = """@searchlog = EXTRACT UserId int, Start DateTime, Region string, Query string,
        Duration int, Urls string, ClickedUrls string
    FROM "/Samples/Data/SearchLog.tsv" USING Extractors.Tsv();
@r = SELECT Region, COUNT(*) AS n FROM @searchlog GROUP BY Region;
OUTPUT @r TO "/output/regions.csv" ORDER BY Region USING Outputters.Csv();
"""


@pytest.fixture(scope="module")
def pool():
    with azhpc.connect(workers=2, progress=False) as session:
        yield session


def _mentions(lake: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        lake / "output" / "mentions.csv", header=None, names=["date", "mentions", "pid"]
    )
    return frame


def test_run_succeeds_with_adla_states_outputs_and_stages(lake: Path) -> None:
    job = usql.run(SIMPLE, lake=RootedFileSystem(lake), name="regions.usql")
    assert (job.state, job.outcome) == (JobState.ENDED, JobResult.SUCCEEDED)
    assert job.done() and not job.cancelled() and job.errors == []
    assert job.outputs == {"/output/regions.csv": 7}
    assert [(s.kind, s.state) for s in job.stages] == [
        ("extract", "done"),
        ("query", "done"),
        ("output", "done"),
    ]
    progress = job.progress
    assert (progress.steps_done, progress.steps_total, progress.rows) == (3, 3, 7)
    assert progress.current is None and progress.state is JobState.ENDED
    assert job.result().outputs == job.outputs
    assert job.raise_for_errors() is job


def test_compile_error_ends_failed_and_run_raises(lake: Path) -> None:
    bad = "@a = SELECT * FROM (VALUES (1)) AS T(a);\n@b = SELECT a\n   FRM @a;\n"
    job = usql.submit(bad, lake=lake, name="bad.usql").wait(timeout=30)
    assert (job.state, job.outcome) == (JobState.ENDED, JobResult.FAILED)
    (error,) = job.errors
    assert isinstance(error, azhpc.AzhpcError)
    assert (error.code, error.line, error.column) == (ErrorCode.SYNTAX, 3, 4)
    assert job.stages == []  # never planned
    with pytest.raises(usql.UsqlError) as info:
        job.result()
    assert info.value is error
    with pytest.raises(usql.UsqlError, match=r"^bad\.usql:3:4: E_CSC_USER_SYNTAXERROR"):
        usql.run(bad, lake=lake, name="bad.usql")


def test_runtime_error_fails_the_job_and_writes_nothing(lake: Path) -> None:
    script = SIMPLE.replace("SearchLog.tsv", "Missing.tsv")
    job = usql.submit(script, lake=lake).wait(timeout=30)
    assert job.outcome is JobResult.FAILED
    assert job.errors[0].code is ErrorCode.FILE_NOT_FOUND
    assert job.stages[0].state == "failed"
    assert not (lake / "output" / "regions.csv").exists()


def test_submit_cancel_ends_cancelled_without_output(lake: Path, monkeypatch) -> None:
    gate = types.ModuleType("azhpc_usql_test_gate")
    gate.started, gate.release = threading.Event(), threading.Event()
    monkeypatch.setitem(sys.modules, gate.__name__, gate)
    script = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @s = @"
import azhpc_usql_test_gate as gate
def usqlml_main(df):
    gate.started.set()
    gate.release.wait(30)
    return df
";
@t = SELECT * FROM (VALUES ("a", 1)) AS T(k, v);
@r = REDUCE @t ON k PRODUCE k string, v int USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" USING Outputters.Csv();
"""
    job = usql.submit(script, lake=lake)
    assert gate.started.wait(30)
    assert job.state is JobState.RUNNING and job.progress.current == "@r"
    assert job.cancel() is True
    gate.release.set()
    job.wait(timeout=30)
    assert (job.state, job.outcome) == (JobState.ENDED, JobResult.CANCELLED)
    assert job.cancelled() and job.errors[0].code is ErrorCode.CANCELLED
    assert job.cancel() is False
    assert not (lake / "o.csv").exists()


def test_reduce_scattered_over_the_pool_equals_in_process(lake: Path, pool) -> None:
    local = usql.run(MENTIONS, lake=lake, pool=pool)
    in_process = _mentions(lake)
    assert set(in_process.pid) == {os.getpid()}
    assert local.stages[1].tasks_total == 0
    job = usql.run(MENTIONS, lake=lake, pool=pool, parallelism=2)
    scattered = _mentions(lake)
    assert job.outputs == local.outputs == {"/output/mentions.csv": len(in_process)}

    # rows within a group come in no set order (no PRESORT), as on ADLA: compare sorted
    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame.drop(columns="pid").fillna("")
        return rows.sort_values(list(rows.columns)).reset_index(drop=True)

    assert_frame_equal(ordered(scattered), ordered(in_process))
    # the groups ran as two tasks in the pool's worker processes, not here
    reduce = job.stages[1]
    assert (reduce.kind, reduce.groups, reduce.tasks_total, reduce.tasks_done) == (
        "reduce",
        local.stages[1].groups,
        2,
        2,
    )
    assert os.getpid() not in set(scattered.pid) and len(set(scattered.pid)) == 2


def test_reducer_exception_through_the_pool_keeps_python_traceback(lake: Path, pool) -> None:
    script = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @s = @"
def helper(x):
    return 1 / 0

def usqlml_main(df):
    return helper(df)
";
@t = SELECT * FROM (VALUES ("a", 1), ("b", 2), ("c", 3)) AS T(k, v);
@r = REDUCE @t ON k PRODUCE k string USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" USING Outputters.Csv();
"""
    job = usql.submit(script, lake=lake, pool=pool, parallelism=2, name="job.usql")
    (error,) = job.wait(timeout=60).errors
    assert job.outcome is JobResult.FAILED
    assert error.code is ErrorCode.PYTHON_EXCEPTION and "ZeroDivisionError" in error.message
    text = str(error)
    assert 'File "job.usql", line 4, in helper' in text and "return 1 / 0" in text
    assert (error.line, error.column) == (10, 1)
    assert not (lake / "o.csv").exists()


def test_paths_resolve_in_the_session_lake(tmp_path: Path) -> None:
    with azhpc.connect(workers=2, progress=False, lake_root=str(tmp_path / "lake")) as session:
        assert usql.script_lake(pool=session) is session.lake.filesystem()
        assert usql.script_lake(pool=session).local_path("/") == str((tmp_path / "lake").resolve())
        written = usql.install_samples(pool=session)
        assert "/Samples/Data/SearchLog.tsv" in written
        assert "/Samples/Data/Tweets/saveenrTweets.csv" in written
        job = usql.run(SIMPLE, pool=session)
        assert azhpc.lake.exists("/output/regions.csv")  # the session's own lake
        again = usql.run(SIMPLE.replace("/output/", "/again/"), lake=session.lake)  # a Lake
        assert again.outputs["/again/regions.csv"] == 7
    assert (tmp_path / "lake" / "output" / "regions.csv").is_file()
    assert job.outputs["/output/regions.csv"] == 7

    other = tmp_path / "other"  # a folder is the lake rooted there, as is a RootedFileSystem
    assert usql.script_lake(str(other)).local_path("/x.csv") == str(other.resolve() / "x.csv")
    assert usql.script_lake(other).local_path("/") == str(other.resolve())
    rooted = RootedFileSystem(other)
    assert usql.script_lake(rooted) is rooted
    with pytest.raises(TypeError, match="Lake"):
        usql.script_lake(types.SimpleNamespace(root=str(other)))


def test_parallelism_must_be_positive() -> None:
    with pytest.raises(ValueError, match="parallelism"):
        usql.submit("", parallelism=0)
    with pytest.raises(azhpc.ConfigError, match="parallelism must be a whole number"):
        usql.run("", parallelism=1.5)


def test_params_parse_literals_and_external_text() -> None:
    from azhpc.usql.params import parse_params

    parsed = parse_params(["n=42", 'who="Ann"', "ok=false", "x=1.5", "region=en-gb", "@d=x=y"])
    assert parsed == {"n": 42, "who": "Ann", "ok": False, "x": 1.5, "region": "en-gb", "d": "x=y"}
    assert parse_params(["n=42"], 'DECLARE EXTERNAL @n string = "a";') == {"n": "42"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["novalue"])


def test_run_progress_false_runs_without_callbacks(lake: Path, capsys) -> None:
    job = usql.run(SIMPLE, lake=RootedFileSystem(lake), progress=False)
    assert (job.state, job.outcome) == (JobState.ENDED, JobResult.SUCCEEDED)
    assert job.outputs == {"/output/regions.csv": 7}
    assert capsys.readouterr().err == ""


def test_run_progress_true_prints_a_line_per_step(lake: Path, capsys) -> None:
    job = usql.run(SIMPLE, lake=RootedFileSystem(lake), progress=True)
    assert job.outcome is JobResult.SUCCEEDED
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert lines[-1].startswith("[3/3] output") and "7 rows in" in lines[-1]


def test_run_progress_of_another_kind_is_refused_before_the_job_starts(lake: Path) -> None:
    with pytest.raises(azhpc.ArgumentTypeError, match="progress= takes True"):
        usql.run(SIMPLE, lake=RootedFileSystem(lake), progress="yes")
    assert not (lake / "output" / "regions.csv").exists()
