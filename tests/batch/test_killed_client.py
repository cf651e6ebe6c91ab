"""A client killed outright (SIGKILL: no code of it runs) takes its emulated Batch work with
it: the task processes on the emulated nodes and the emulator's temporary folder go too
(issue 13, defect 9)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import batch_available, communicate_or_kill, process_exists, wait_until

CLIENT = """
import os, sys, time
from pathlib import Path
import azhpc

started = Path(sys.argv[1])

def forever(folder):
    from pathlib import Path
    import os, time
    Path(folder, "task.pid").write_text(str(os.getpid()))
    while True:
        time.sleep(0.2)

with azhpc.connect("emulated", backend="batch", workers=1, progress=False) as session:
    started.with_name("root").write_text(str(session.backend.account.emulator.root))
    job = session.submit(forever, str(started.parent))
    while not started.with_name("task.pid").exists():
        time.sleep(0.05)
    started.write_text("running")
    job.result()
"""


def test_sigkilled_client_takes_its_emulated_task_processes_and_folder_with_it(tmp_path) -> None:
    if not batch_available():
        pytest.skip("needs azure-batch and Azurite (./dev test installs both)")
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT))
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(started)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).parents[2]),
    )
    try:
        wait_until(lambda: started.exists() or proc.poll() is not None, timeout=120, what="task")
        assert proc.poll() is None, communicate_or_kill(proc, 10)
        task_pid = int((tmp_path / "task.pid").read_text())
        root = Path((tmp_path / "root").read_text())
        assert process_exists(task_pid) and root.is_dir()
        proc.kill()  # SIGKILL: no exit handler of the client runs
        communicate_or_kill(proc, 30)
        wait_until(lambda: not process_exists(task_pid), timeout=30, what="the task to die")
        wait_until(lambda: not root.exists(), timeout=30, what="the emulator folder to go")
    finally:
        if proc.poll() is None:
            proc.kill()
            communicate_or_kill(proc, 30)
