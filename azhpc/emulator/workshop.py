"""``azhpc emulator start|status|stop``: Azurite and the Batch emulator for a whole workshop.

:func:`start` runs both in a background process (``python -m azhpc.emulator.workshop``) that
writes the state file (:mod:`azhpc.emulator.state`) once they answer and removes it when it
stops (SIGTERM, SIGINT). Notebooks on this machine then connect to them with
``azhpc.connect("emulated")``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from azhpc.emulator.azurite import Azurite
from azhpc.emulator.batch import BatchEmulator
from azhpc.emulator.state import EmulatorState, discover, load, remove, save, state_path
from azhpc.errors import WorkshopEmulatorError

__all__ = ["WorkshopEmulatorError", "serve", "start", "stop"]


def serve() -> int:
    """Run Azurite and the Batch emulator in this process until SIGTERM or SIGINT."""

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with Azurite() as azurite, BatchEmulator() as batch:
        save(
            EmulatorState(
                pid=os.getpid(),
                batch_url=batch.url,
                batch_account_name=batch.account_name,
                batch_account_key=batch.account_key,
                azurite_port=int(azurite.port or 0),
            )
        )
        print(f"serving Batch at {batch.url}, Azurite at {azurite.blob_endpoint}", flush=True)
        try:
            stop.wait()
        finally:
            remove(os.getpid())
    return 0


def _log_path() -> str:
    return str(state_path().with_suffix(".log"))


def start(timeout: float = 90.0) -> tuple[EmulatorState, bool]:
    """Start the background emulators unless they run already.

    Returns
    -------
    (EmulatorState, bool)
        Where they listen, and whether this call started them.

    Raises
    ------
    WorkshopEmulatorError
        They did not come up within ``timeout`` seconds (the message quotes their log).
    """
    running = discover()
    if running is not None:
        return running, False
    remove()  # a stale file from a process that is gone
    log_path = _log_path()
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "azhpc.emulator.workshop"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = load()
        if state is not None and state.pid == process.pid and state.healthy():
            return state, True
        if process.poll() is not None:
            break
        time.sleep(0.1)  # polling another process's readiness
    if process.poll() is None:
        process.terminate()
    raise WorkshopEmulatorError(
        f"the emulators did not start within {timeout:g} s; their log ({log_path}) ends:\n"
        + _tail(log_path)
    )


def stop(timeout: float = 30.0) -> bool:
    """Stop the background emulators; ``False`` when none was running."""
    state = load()
    if state is None:
        return False
    try:
        os.kill(state.pid, signal.SIGTERM)
    except ProcessLookupError:
        remove()
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(state.pid, 0)
        except ProcessLookupError:
            remove(state.pid)
            return True
        time.sleep(0.1)  # waiting for another process to exit
    raise WorkshopEmulatorError(
        f"the emulators (pid {state.pid}) did not stop within {timeout:g} s; kill that process"
    )


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(serve())
