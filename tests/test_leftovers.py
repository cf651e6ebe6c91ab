"""The end-of-run check of what a test run leaves behind (tests/leftovers.py, tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import process_exists, wait_until
from tests.leftovers import processes_left, temporary_files_left, wait_while

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")

_PATH = "/usr/local/bin:/usr/bin:/bin"


@contextlib.contextmanager
def orphan(env: dict[str, str], cwd: Path | str = "/") -> Iterator[int]:
    """A ``sleep`` whose parent (bash) has exited: re-parented, no descendant of this process;
    killed on exit from the block."""
    out = subprocess.run(
        ["bash", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
        env={"PATH": _PATH, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not process_exists(pid), 10, "the orphan to end")


def pids(found) -> dict[int, str]:
    return {p.pid: p.why for p in found}


def test_processes_left_finds_a_reparented_process_by_the_folder_in_its_environment(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with orphan({"TMPDIR": str(run)}) as pid:
        # a look at /proc races the orphan's start (fork, exec) on a loaded machine: look
        # again until it is seen (the CI run of 2026-12-02 missed it once)
        wait_until(
            lambda: pids(processes_left(run)).get(pid) == "environment",
            10,
            "the orphan to be found by its environment",
        )


def test_processes_left_finds_a_clean_environment_process_by_its_working_folder(
    tmp_path: Path,
) -> None:
    """Emulated nodes start processes with an environment of their own: a process there is
    found by where it runs (or by the node folders its environment names)."""
    run = tmp_path / "run"
    (run / "node" / "wd").mkdir(parents=True)
    with orphan({}, cwd=run / "node" / "wd") as pid:  # bash exports PWD: environment
        assert pids(processes_left(run)).get(pid) == "environment"
    child = subprocess.Popen(["sleep", "60"], env={"PATH": _PATH}, cwd=run / "node" / "wd")
    try:
        assert pids(processes_left(run)).get(child.pid) == "working folder"
    finally:
        child.kill()
        child.wait()
    with orphan({"AZ_BATCH_NODE_ROOT_DIR": str(run / "node")}) as pid:
        assert pids(processes_left(run)).get(pid) == "environment"


def test_processes_left_ignores_the_processes_of_another_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    other = tmp_path / "run2"  # the run's path is a prefix of it: not the same folder
    for folder in (run, other):
        folder.mkdir()
    with orphan({"TMPDIR": str(other)}, cwd=other) as pid:
        assert pid not in pids(processes_left(run))
        assert pids(processes_left(other)).get(pid) == "environment"


def test_processes_left_finds_children_without_the_mark_and_leaves_out_this_process(
    tmp_path: Path,
) -> None:
    child = subprocess.Popen(["sleep", "60"], env={"PATH": _PATH}, cwd="/")
    try:
        found = pids(processes_left(tmp_path))
        assert found.get(child.pid) == "child of the test process"
        assert os.getpid() not in found
        assert child.pid not in pids(processes_left(tmp_path, exclude=[child.pid]))
    finally:
        child.kill()
        child.wait()
    assert child.pid not in pids(processes_left(tmp_path))


def test_processes_left_of_this_run_include_what_it_starts() -> None:
    """The run's folder is the temporary folder of the processes it starts (set at configure
    time, tests/conftest.py), and of this one."""
    run = Path(os.environ["TMPDIR"])
    assert tempfile.gettempdir() == str(run)
    assert run.name.startswith("azhpc-run-")
    with orphan({"TMPDIR": os.environ["TMPDIR"]}) as pid:
        assert pid in pids(processes_left(run))
    probe = [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"]
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == str(run)


def test_temporary_files_left_lists_all_but_pytest_folders_and_kept_ones(tmp_path: Path) -> None:
    (tmp_path / "pytest-of-someone" / "pytest-3").mkdir(parents=True)
    (tmp_path / "azhpc-tests-home").mkdir()
    (tmp_path / "azhpc-batch-emulator-x" / "pool").mkdir(parents=True)
    (tmp_path / "azhpc-batch-emulator-x" / "pool" / "stdout.txt").write_text("")
    (tmp_path / "tmpfile").write_text("")
    assert temporary_files_left(tmp_path, keep=[tmp_path / "azhpc-tests-home"]) == [
        f"{tmp_path / 'azhpc-batch-emulator-x'}/ (1 file(s))",
        str(tmp_path / "tmpfile"),
    ]
    assert temporary_files_left(tmp_path / "gone") == []


def test_wait_while_stops_when_the_condition_ends_or_at_the_deadline() -> None:
    calls = []
    assert wait_while(lambda: calls.append(1) or len(calls) < 3, timeout=10, interval=0.01)
    assert len(calls) == 3
    assert not wait_while(lambda: True, timeout=0.05, interval=0.01)


PROBE = """
import subprocess, tempfile

def test_leaves_a_process_and_a_folder():
    subprocess.Popen(["sleep", "60"], start_new_session=True)
    tempfile.mkdtemp(prefix="azhpc-probe-")
"""


def test_a_run_that_leaves_a_process_or_a_file_fails_and_lists_them(tmp_path: Path) -> None:
    """A run of a test file that leaks, with this conftest as a plugin (``-p tests.conftest``)."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "AZHPC_TEST_LEFTOVER_GRACE": "0.5"}
    command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    run = subprocess.run(
        [sys.executable, *command, "--rootdir", str(tmp_path), str(probe)],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    leaked = [int(pid) for pid in re.findall(r"pid (\d+) \(environment\): sleep 60", run.stdout)]
    try:
        assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
        assert "1 passed" in run.stdout
        assert "1 process(es) of this run still running" in run.stdout
        assert len(leaked) == 1, run.stdout
        assert "1 temporary file(s) or folder(s) left behind" in run.stdout
        assert re.search(r"/azhpc-run-[^/]+/azhpc-probe-[^/]+/ \(0 file\(s\)\)", run.stdout)
    finally:
        for pid in leaked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
