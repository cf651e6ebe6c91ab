"""The local backend's shared-memory scratch folders: none outlives its client for long."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import azhpc
from azhpc.backends.local.scratch import owner_pid, reclaim_stale_folders
from tests.conftest import communicate_or_kill, wait_until

ROOT = Path(__file__).resolve().parent.parent

# A client that stages a large input (a payload file in its scratch folder) for a task that
# runs until the client goes, prints its scratch folder, then {ending}.
CLIENT = """
import sys, threading, numpy as np, azhpc
session = azhpc.connect(workers=1, progress=False)
def hold(a):
    threading.Event().wait()
job = session.submit(hold, np.zeros(400_000))  # 3.2 MB: staged as a file, not in a frame
scratch = session.backend._scratch
print(scratch, flush=True)
{ending}
"""


def _client(ending: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CLIENT).format(ending=ending)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _staged(scratch: str) -> bool:
    return any(name.startswith("in-") for name in os.listdir(scratch))


def test_scratch_folder_of_a_client_that_exits_without_close_is_removed():
    client = _client("import os\nwhile not any(n.startswith('in-') for n in os.listdir(scratch)):"
                     "\n    threading.Event().wait(0.01)\nsys.exit(0)")  # fmt: skip
    scratch = client.stdout.readline().strip()
    _, err = communicate_or_kill(client, 60)
    assert client.returncode == 0, err
    assert scratch.rsplit("/", 1)[-1].startswith(f"azhpc-{client.pid}-")
    assert not os.path.exists(scratch), f"{scratch} was left behind by a client that exited"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_scratch_folder_of_a_killed_client_is_reclaimed_by_the_next_session(how: int):
    client = _client("sys.stdin.read()")
    try:
        scratch = client.stdout.readline().strip()
        assert scratch, communicate_or_kill(client, 30)
        wait_until(lambda: _staged(scratch), 60, "the input to be staged")
    finally:
        client.send_signal(how)
        communicate_or_kill(client, 60)
    assert client.returncode == -how
    assert os.path.isdir(scratch)  # a killed client cannot clean up after itself
    with azhpc.connect(workers=1, progress=False) as session:
        assert not os.path.exists(scratch), "the next session did not reclaim a dead client's"
        assert os.path.isdir(session.backend._scratch)


def test_reclaim_leaves_the_folders_of_live_processes_and_other_names(tmp_path: Path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f"azhpc-{int(ended.stdout)}-abc123"
    live = tmp_path / f"azhpc-{os.getppid()}-def456"
    mine = tmp_path / f"azhpc-{os.getpid()}-ghi789"
    other = tmp_path / "azhpc-tests-xyz"
    link = tmp_path / f"azhpc-{int(ended.stdout)}-link"
    for folder in (dead, live, mine, other):
        folder.mkdir()
        (folder / "in-job-0").write_bytes(b"x")
    link.symlink_to(other)
    assert owner_pid(dead.name) == int(ended.stdout) and owner_pid(other.name) is None
    assert reclaim_stale_folders(str(tmp_path)) == [str(dead)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, mine.name, other.name, link.name]
    )
