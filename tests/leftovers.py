"""What a test run leaves behind: processes it started and files in its temporary folder.

Every run gets a private temporary folder (:func:`make_run_folder`): ``TMPDIR`` and
``tempfile.tempdir`` point into it, so everything azhpc and the processes it starts create
with :mod:`tempfile` (emulator roots, Azurite workspaces, U-SQL scratch, pytest's own
``tmp_path`` folders) lands there and nowhere that other runs on this machine use.

That folder's path is also the run's mark on its processes. A process the run started is one
that

- names the folder in its initial environment (``TMPDIR``, inherited by every child; the
  emulated Batch nodes build their environment from scratch, but their ``TMPDIR`` and
  ``AZ_BATCH_*`` folders are under the emulator's root, itself in the folder), in its command
  line, or has its working folder in it, or
- descends from the test process (a ``fork`` without ``exec`` keeps the parent's initial
  environment).

The mark survives re-parenting (daemons, process guards in sessions of their own), and no
process of another run carries it: its folder is another one.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LeftProcess",
    "make_run_folder",
    "processes_left",
    "temporary_files_left",
    "wait_while",
]

#: Folders of the run's temporary folder that are not leftovers: pytest keeps its ``tmp_path``
#: folders (``pytest-of-<user>``) on purpose; they go with the run's folder.
PYTEST_TEMP = "pytest-of-"


@dataclass(frozen=True)
class LeftProcess:
    """A process of the run still alive at its end."""

    pid: int
    command: str
    why: str  # "environment", "command line", "working folder" or "child of the test process"

    def __str__(self) -> str:
        command = self.command if len(self.command) <= 300 else self.command[:297] + "..."
        return f"pid {self.pid} ({self.why}): {command}"


def make_run_folder() -> Path:
    """Make the run's private temporary folder and make it the temporary folder of this
    process (``tempfile.tempdir``, which caches its first answer) and of every process it
    starts (``TMPDIR``)."""
    folder = Path(tempfile.mkdtemp(prefix="azhpc-run-")).resolve()
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    return folder


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from ``/proc/<pid>/stat``, or ``None`` once it has gone."""
    text = _read(f"/proc/{pid}/stat").decode(errors="replace")
    if ") " not in text:
        return None
    fields = text.rsplit(") ", 1)[1].split()
    return fields[0], int(fields[1])


def _why_marked(pid: int, mark: bytes, pattern: re.Pattern[bytes]) -> str | None:
    if pattern.search(_read(f"/proc/{pid}/environ")):
        return "environment"
    if pattern.search(_read(f"/proc/{pid}/cmdline")):
        return "command line"
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").encode()
    except OSError:
        cwd = b""
    if cwd == mark or cwd.startswith(mark + b"/"):
        return "working folder"
    return None


def processes_left(folder: Path, exclude: Iterable[int] = ()) -> list[LeftProcess]:
    """The live processes of this user marked by the run's ``folder`` or descending from this
    process (see the module docstring), this process and ``exclude`` left out; zombies are not
    alive."""
    me = os.getpid()
    skip = {me, *exclude}
    mark = os.fsencode(folder)
    # the folder itself or a path in it, as a whole value or an item of a PATH-like list
    pattern = re.compile(re.escape(mark) + rb"(?=[/:\x00]|$)")
    uid = os.getuid()
    parents: dict[int, int] = {}
    live: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        parents[pid] = fields[1]
        live.append(pid)

    def descends_from_me(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == me:
                return True
        return False

    found = []
    for pid in sorted(live):
        if pid in skip:
            continue
        why = _why_marked(pid, mark, pattern)
        if why is None and descends_from_me(pid):
            why = "child of the test process"
        if why is None:
            continue
        command = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").strip()
        if not command and _stat_fields(pid) is None:
            continue  # it ended while we looked
        found.append(LeftProcess(pid, command.decode(errors="replace"), why))
    return found


def temporary_files_left(folder: Path, keep: Iterable[Path] = ()) -> list[str]:
    """What is in the run's temporary ``folder`` (one line per top-level item, with how many
    files a folder holds), pytest's ``tmp_path`` folders and ``keep`` left out."""
    kept = {Path(p) for p in keep}
    left = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return left
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(PYTEST_TEMP) or path in kept:
            continue
        if entry.is_dir(follow_symlinks=False):
            count = sum(len(files) for _, _, files in os.walk(path))
            left.append(f"{path}/ ({count} file(s))")
        else:
            left.append(str(path))
    return left


def wait_while(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it is false or ``timeout`` seconds have passed; whether it
    became false."""
    deadline = time.monotonic() + timeout
    while condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
