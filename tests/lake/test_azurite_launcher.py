"""The Azurite launcher: starts, answers, stops with everything it started."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import process_exists, wait_until

from azhpc.emulator.azurite import Azurite, AzuriteNotFoundError, AzuriteStartError, find_azurite

from .conftest import azurite_installed

needs_azurite = pytest.mark.skipif(
    not azurite_installed() and not os.environ.get("CI"),
    reason="Azurite is not installed (run `npm ci` or ./dev test)",
)


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@needs_azurite
def test_azurite_start_answers_and_stop_leaves_no_process():
    azurite = Azurite()
    with azurite:
        assert azurite.running and azurite.port
        assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
        members = group_members(azurite.pid)
        assert len(members) >= 2  # the guard and node
        connection = http.client.HTTPConnection("127.0.0.1", azurite.port, timeout=5)
        connection.request("GET", "/devstoreaccount1?comp=list")
        assert connection.getresponse().status in (200, 403)
        connection.close()
        assert "AccountKey=" not in repr(azurite)
    assert not azurite.running
    for pid in members:
        wait_until(lambda pid=pid: not process_exists(pid), 10, f"pid {pid} to end")
    azurite.stop()  # idempotent


@needs_azurite
def test_azurite_dies_with_its_owner_process():
    code = (
        "import json, sys; from azhpc.emulator.azurite import Azurite; a = Azurite().start(); "
        "print(json.dumps([a.pid, a.port]), flush=True); sys.stdin.read()"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        pid, _port = json.loads(owner.stdout.readline())
        members = group_members(pid)
        assert members
        workspace = Path(os.readlink(f"/proc/{pid}/cwd"))
        assert workspace.name.startswith("azhpc-azurite-")
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    for member in members:
        wait_until(lambda m=member: not process_exists(m), 15, f"Azurite pid {member} to end")
    wait_until(lambda: not workspace.exists(), 15, "Azurite's workspace to be removed")


def test_azurite_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(AzuriteNotFoundError, match="npm ci") as info:
        find_azurite(tmp_path / "no-azurite-here")
    assert "./dev test" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.setenv("AZHPC_AZURITE", str(tmp_path / "nothing"))
    with pytest.raises(AzuriteNotFoundError, match="AZHPC_AZURITE"):
        Azurite().start()


def _script(folder: Path, body: str) -> Path:
    script = folder / "fake-azurite"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("executable", ["/bin/false", "script"])
def test_azurite_that_exits_at_start_fails_at_once_naming_the_command(
    tmp_path: Path, executable: str
):
    if executable == "script":
        executable = str(
            _script(tmp_path, "echo 'listen EADDRINUSE: address already in use'\nexit 3")
        )
    elif not os.path.exists(executable):
        pytest.skip(f"{executable} is not on this machine")
    azurite = Azurite(executable=executable, start_timeout=60)
    started = time.monotonic()
    with pytest.raises(AzuriteStartError) as info:
        azurite.start()
    assert time.monotonic() - started < 10, "the launcher waited instead of noticing the exit"
    message = str(info.value)
    assert executable in message and "exited" in message
    if "fake-azurite" in executable:
        assert "EADDRINUSE" in message and "code 3" in message
    assert not azurite.running
