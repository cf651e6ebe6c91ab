"""``azhpc emulator start|status|stop``: background emulators that every ``connect("emulated")``
on the machine shares, with their keys in an owner-only state file and never on screen."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import azhpc
from tests.conftest import batch_available, process_exists

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)

DEV_KEY_START = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azhpc.cli", "emulator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_status_connect_and_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_file = tmp_path / "state" / "emulator.json"
    monkeypatch.setenv("AZHPC_EMULATOR_STATE", str(state_file))
    env = dict(os.environ)
    assert cli("status", env=env).returncode == 3

    started = cli("start", env=env)
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads(state_file.read_text())
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert state["batch_url"] in started.stdout
        again = cli("start", env=env)
        assert "already running" in again.stdout
        status = cli("status", env=env)
        assert status.returncode == 0 and "0 pool(s)" in status.stdout
        shown = started.stdout + started.stderr + again.stdout + status.stdout
        assert state["batch_account_key"] not in shown and DEV_KEY_START not in shown

        # Two sessions, one after the other, share the lake and the Batch account.
        with azhpc.connect("emulated", workers=1, progress=False) as first:
            emulator = first.backend.account.emulator
            assert emulator.url == state["batch_url"]
            assert state["batch_account_key"] not in repr(emulator)
            assert first.map(abs, [-1, -2], chunksize=1) == [1, 2]
            with first.lake.open("/shared/hello.txt", "wb") as out:
                out.write(b"from the first session")
            assert emulator.request_counts().get("Task_AddCollection", 0) >= 1
        with (
            azhpc.connect("emulated", progress=False) as second,
            second.lake.open("/shared/hello.txt") as f,
        ):
            assert f.read() == b"from the first session"
        assert cli("status", env=env).returncode == 0  # closing sessions stops nothing
    finally:
        stopped = cli("stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert not state_file.exists()
    assert not process_exists(state["pid"])
    assert cli("status", env=env).returncode == 3
    assert "not running" in cli("stop", env=env).stdout
