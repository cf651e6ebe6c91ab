"""The local backend's scratch folders: payload files in shared memory, one folder per client.

Each :class:`~azhpc.backends.local.LocalBackend` keeps large inputs and results in a private
folder ``/dev/shm/azhpc-<pid>-<random>`` (the system's temporary folder where there is no
``/dev/shm``), named after the client process that owns it. ``close()`` removes it, and so
does interpreter exit; a client killed by a signal cannot, so every new folder is made after
:func:`reclaim_stale_folders` removed those whose owner process is gone.

A test harness may set ``AZHPC_SCRATCH_TAG`` (letters, digits, ``_``): the folders of every
process that inherits it are then named ``azhpc-<pid>-<tag>-<random>``, so the harness can tell
its own from those of other runs on the same machine.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

__all__ = [
    "SCRATCH_TAG_VARIABLE",
    "make_scratch_folder",
    "owner_pid",
    "process_alive",
    "reclaim_stale_folders",
    "scratch_base",
]

#: The environment variable whose value is put in the names of scratch folders.
SCRATCH_TAG_VARIABLE = "AZHPC_SCRATCH_TAG"

_NAME = re.compile(r"azhpc-(\d+)-[A-Za-z0-9_-]+")


def scratch_base() -> str:
    """Where scratch folders go: ``/dev/shm`` when it is a writable folder, else the temp dir."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def _tag() -> str:
    tag = os.environ.get(SCRATCH_TAG_VARIABLE, "")
    return f"{tag}-" if re.fullmatch(r"[A-Za-z0-9_]{1,40}", tag) else ""


def make_scratch_folder(base: str | None = None) -> str:
    """A new private (0700) scratch folder for this process, after reclaiming stale ones.

    Parameters
    ----------
    base
        The folder to make it in; default :func:`scratch_base`.

    Returns
    -------
    str
        The folder's path, ``<base>/azhpc-<pid>-[<tag>-]<random>``.
    """
    base = base or scratch_base()
    reclaim_stale_folders(base)
    return tempfile.mkdtemp(prefix=f"azhpc-{os.getpid()}-{_tag()}", dir=base)


def owner_pid(name: str) -> int | None:
    """The pid of the process a scratch folder named ``name`` belongs to, or ``None``."""
    match = _NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_stale_folders(base: str | None = None) -> list[str]:
    """Remove the scratch folders in ``base`` whose owner process has ended.

    Only this user's folders named ``azhpc-<pid>-...`` (not symbolic links) are considered;
    a folder whose pid is alive — its owner, or an unrelated process that reused the pid —
    is left alone.

    Parameters
    ----------
    base
        The folder to look in; default :func:`scratch_base`.

    Returns
    -------
    list of str
        The folders removed.
    """
    base = base or scratch_base()
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        pid = owner_pid(entry.name)
        if pid is None or pid == os.getpid():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        if process_alive(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(entry.path)
    return removed
