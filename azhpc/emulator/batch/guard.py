"""Node processes never outlive the emulator: a guard process kills them when it goes.

Emulated start tasks and tasks run in process groups of their own (so that preemption and
``stop()`` can kill them with everything they started). When the process that runs the
emulator is killed outright (SIGKILL, an out-of-memory kill), no code of it runs, and those
groups would live on. So each emulator starts a small guard process, in a session of its own
(Ctrl-C in a terminal does not reach it), and tells it through a pipe which process groups
exist: ``+<pgid>`` when one starts, ``-<pgid>`` when it has ended. When the pipe closes (the
emulator stopped, or died: the kernel closes its end either way), the guard kills the groups
still listed, removes the emulator's temporary folder if it was given one, and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

__all__ = ["ProcessGuard"]

_GUARD = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
if len(sys.argv) > 1:
    import shutil
    shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


class ProcessGuard:
    """The guard of one emulator's node processes (see the module docstring).

    Parameters
    ----------
    remove
        A folder to remove once the processes are killed (the emulator's temporary root).
    """

    def __init__(self, remove: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        extra = [os.fspath(remove)] if remove is not None else []
        self._process: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-c", _GUARD, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            close_fds=True,
        )

    def __repr__(self) -> str:
        process = self._process
        return f"<ProcessGuard pid={process.pid if process else None}>"

    @property
    def pid(self) -> int | None:
        """The guard's process id (``None`` once closed)."""
        return self._process.pid if self._process is not None else None

    def _send(self, line: str) -> None:
        with self._lock:
            process = self._process
            if process is None or process.stdin is None:
                return
            try:
                process.stdin.write(line + "\n")
                process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the guard is gone: nothing to tell it

    def started(self, group: int) -> None:
        """A process group now exists (its leader's pid)."""
        self._send(f"+{group}")

    def ended(self, group: int) -> None:
        """That process group's leader has been waited for."""
        self._send(f"-{group}")

    def close(self) -> None:
        """Close the pipe: the guard kills what is still listed, then exits. Idempotent."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
