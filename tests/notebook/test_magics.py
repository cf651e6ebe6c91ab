"""``%%azrun`` and ``%azrun`` through a real IPython shell, on a 2-worker local pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import azhpc
from azhpc import scatter
from azhpc.notebook.azrun import AzrunResult
from azhpc.notebook.magics import split_map_expression


def run(shell: InteractiveShell, source: str):
    """Run a cell; fail the test with the error if it raised."""
    result = shell.run_cell(source)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def test_azrun_cell_pushes_and_pulls_variables(shell: InteractiveShell, capsys) -> None:
    run(shell, "x = 20\ndef double(v):\n    return 2 * v")
    value = run(shell, "%%azrun\ny = double(x) + 1\nprint('remote says', y)\ny * 2")
    assert value == 82
    assert shell.user_ns["y"] == 41
    assert "remote says 41" in capsys.readouterr().out


def test_azrun_cell_out_limits_what_comes_back(shell: InteractiveShell) -> None:
    run(shell, "data = [3, 1, 2]")
    run(shell, "%%azrun --out total\ntotal = sum(data)\nscratch = 1")
    assert shell.user_ns["total"] == 6
    assert "scratch" not in shell.user_ns


def test_azrun_cell_map_collects_last_values(shell: InteractiveShell) -> None:
    run(shell, "base = 10")
    value = run(shell, "%%azrun --map i in range(0, 7) --out squares\ni * i + base")
    assert value == [i * i + 10 for i in range(7)]
    assert shell.user_ns["squares"] == value


def test_azrun_cell_map_without_out_stores_underscore(shell: InteractiveShell) -> None:
    value = run(shell, '%%azrun --map word in ["a b", "c", "dd  e"]\nlen(word)')
    assert value == [3, 1, 5]
    assert shell.user_ns["_"] == [3, 1, 5]


def test_azrun_cell_scatter_rows_matches_local(shell: InteractiveShell) -> None:
    df = pd.DataFrame({"a": np.arange(1000), "b": np.linspace(0, 1, 1000)})
    shell.push({"df": df, "factor": 3.0})
    run(shell, "%%azrun --scatter df:5 --out scaled\nscaled = df.assign(c=df.a * factor + df.b)")
    expected = df.assign(c=df.a * 3.0 + df.b)
    pd.testing.assert_frame_equal(shell.user_ns["scaled"], expected)


def test_azrun_cell_scatter_by_key_matches_local(shell: InteractiveShell) -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"k": rng.integers(0, 13, 2000), "v": rng.normal(size=2000)})
    shell.push({"df": df})
    run(
        shell,
        "%%azrun --scatter df --by k --out z,sizes\n"
        "z = df.v - df.groupby('k').v.transform('mean')\n"
        "sizes = df.groupby('k').size()",
    )
    expected = df.v - df.groupby("k").v.transform("mean")
    pd.testing.assert_series_equal(shell.user_ns["z"].sort_index(), expected.sort_index())
    pd.testing.assert_series_equal(shell.user_ns["sizes"], df.groupby("k").size())


def test_azrun_cell_scatter_array_concatenates_last_values(shell: InteractiveShell) -> None:
    shell.push({"arr": np.arange(20.0).reshape(10, 2)})
    value = run(shell, "%%azrun --scatter arr:3\narr * 2")
    np.testing.assert_array_equal(value, np.arange(20.0).reshape(10, 2) * 2)


def test_azrun_cell_no_wait_returns_job(shell: InteractiveShell) -> None:
    run(shell, "x = 5")
    job = run(shell, "%%azrun --no-wait --out job\ny = x + 1\ny * 10")
    assert isinstance(job, azhpc.Job)
    assert shell.user_ns["job"] is job
    assert job.result(timeout=60) == AzrunResult(60, {"y": 6})
    assert "y" not in shell.user_ns  # --no-wait never writes into the notebook later


def test_azrun_cell_no_wait_map_result_is_the_list(shell: InteractiveShell) -> None:
    run(shell, "%%azrun --no-wait --map n in range(4)\nn + 1")
    assert shell.user_ns["_"].result(timeout=60).value == [1, 2, 3, 4]


def test_azrun_cell_retries_a_failing_task(shell: InteractiveShell, tmp_path: Path) -> None:
    shell.push({"flag": str(tmp_path / "first-attempt")})
    source = (
        "%%azrun --retries 1\n"
        "import os\n"
        "if not os.path.exists(flag):\n"
        "    open(flag, 'w').close()\n"
        "    raise RuntimeError('first attempt fails')\n"
        "'second attempt'"
    )
    assert run(shell, source) == "second attempt"


def test_azrun_cell_pool_flag_picks_the_session(shell: InteractiveShell, pool) -> None:
    shell.push({"other": pool})
    assert run(shell, "%%azrun --pool other\n1 + 1") == 2
    with pytest.raises(UsageError, match="not an azhpc Session"):
        run(shell, "other = 3")
        run(shell, "%%azrun --pool other\n1 + 1")


def test_azrun_line_evaluates_expression(shell: InteractiveShell) -> None:
    run(shell, "data = list(range(10))\nw = 2")
    run(shell, "total = %azrun sum(v * w for v in data)")
    assert shell.user_ns["total"] == 90
    assert shell.run_line_magic("azrun", "max(data)") == 9


@pytest.fixture
def started_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the jobs started through azhpc.scatter.run_pieces during the test."""
    names: list[str] = []
    real = scatter.run_pieces

    def spy(*args, **kwargs):
        names.append(kwargs["name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scatter, "run_pieces", spy)
    return names


def test_azrun_cell_unpicklable_variable_fails_before_running(
    shell: InteractiveShell, tmp_path: Path, started_jobs: list[str]
) -> None:
    marker = tmp_path / "ran"
    run(shell, f"import threading\nlock = threading.Lock()\nmarker = {str(marker)!r}")
    result = shell.run_cell("%%azrun\nopen(marker, 'w').close()\nwith lock:\n    pass")
    error = result.error_in_exec
    assert isinstance(error, azhpc.UnpicklableVariableError)
    assert error.names == ("lock",)
    assert "lock (_thread.lock)" in str(error) and "inside the cell" in str(error)
    assert not marker.exists()
    assert started_jobs == []


def test_azrun_cell_undefined_variable_fails_before_running(
    shell: InteractiveShell, tmp_path: Path, started_jobs: list[str]
) -> None:
    marker = tmp_path / "ran"
    run(shell, f"marker = {str(marker)!r}")
    result = shell.run_cell("%%azrun\nopen(marker, 'w').close()\nlater = 1\nmissing + later")
    error = result.error_in_exec
    assert isinstance(error, azhpc.UndefinedVariableError)
    assert isinstance(error, NameError)
    assert error.names == ("missing",)
    assert not marker.exists()
    assert started_jobs == []


def test_azrun_cell_remote_error_renders_remote_traceback(shell: InteractiveShell, capsys) -> None:
    result = shell.run_cell(
        "%%azrun\nprint('before the error')\ndef ratio(a, b):\n    return a / b\n\nratio(1, 0)"
    )
    error = result.error_in_exec
    assert isinstance(error, azhpc.TaskError)
    assert error.remote_type == "ZeroDivisionError"
    shown = capsys.readouterr().out
    assert "before the error" in shown
    assert "TaskError" in shown and "ZeroDivisionError: division by zero" in shown
    # the cell's own lines, with their line numbers in the cell, and no azhpc internals
    assert ", line 6, in <module>" in shown and "ratio(1, 0)" in shown
    assert ", line 4, in ratio" in shown and "return a / b" in shown
    assert "cellrun.py" not in shown and "azhpc/" not in shown
    assert error._render_traceback_()[-1] == "ZeroDivisionError: division by zero"


def test_azrun_cell_help_lists_flags(shell: InteractiveShell, capsys) -> None:
    shell.run_cell("%%azrun?")
    shown = capsys.readouterr().out
    for flag in ("--map NAME in EXPR", "--scatter", "--by", "--out", "--retries", "--no-wait"):
        assert flag in shown
    assert "%%azrun" in shown


def test_azrun_cell_rejects_unknown_flag(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%azrun --bogus\n1")
    assert isinstance(result.error_in_exec, UsageError)


def test_azrun_cell_scatter_takes_a_name_not_code(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%azrun --scatter __import__('os')\n1")
    assert isinstance(result.error_in_exec, UsageError)


def test_split_map_expression_stops_at_next_flag() -> None:
    assert split_map_expression("--map x in range(0, 10) --out ys") == (
        "--map x in EXPR --out ys",
        "range(0, 10)",
    )
    line, expression = split_map_expression("--retries 1 --map s in ['--a', \"b c\"]")
    assert expression == "['--a', \"b c\"]"
    assert line == "--retries 1 --map s in EXPR"
    assert split_map_expression("--out y") == ("--out y", None)


def test_azrun_cell_unpicklable_result_stays_on_worker(shell: InteractiveShell, capsys) -> None:
    value = run(shell, "%%azrun\nimport threading\nkept = 7\nguard = threading.Lock()\nkept")
    assert value == 7 and shell.user_ns["kept"] == 7
    assert "guard" not in shell.user_ns
    assert "'guard' (_thread.lock) cannot be sent back" in capsys.readouterr().out


def test_azrun_cell_map_error_names_the_item(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%azrun --map d in [1, 0, 2]\n10 / d")
    error = result.error_in_exec
    assert isinstance(error, azhpc.TaskError)
    assert "(in the run with d = 0)" in error.remote_traceback


def test_azrun_cell_conflicting_flags_are_usage_errors(shell: InteractiveShell) -> None:
    shell.push({"df": pd.DataFrame({"k": [1, 2]})})
    for line in ("--scatter df --map i in range(3)", "--by k", "--out missing"):
        result = shell.run_cell(f"%%azrun {line}\nx = 1")
        assert isinstance(result.error_in_exec, UsageError), line


def test_variable_errors_render_as_their_message_only(shell, pool):
    result = shell.run_cell("%%azrun\nnot_defined_anywhere + 1\n")
    error = result.error_in_exec
    assert isinstance(error, azhpc.UndefinedVariableError)
    [line] = error._render_traceback_()
    assert "UndefinedVariableError" in line and "not_defined_anywhere" in line


def test_azrun_remote_traceback_names_the_cell_it_ran_in(shell: InteractiveShell, capsys) -> None:
    """The remote traceback's file name carries the cell's own number, as the notebook shows
    it (``In[N]``), not the next one (issue 14, item 3)."""
    run(shell, "x = 1")
    result = shell.run_cell("%%azrun\n1 / 0", store_history=True)
    assert isinstance(result.error_in_exec, azhpc.TaskError)
    shown = capsys.readouterr().out
    assert f"<azrun In[{result.execution_count}] " in shown, shown
    assert f"<azrun In[{result.execution_count + 1}] " not in shown
