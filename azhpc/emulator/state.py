"""The running workshop emulators: ``azhpc emulator start`` leaves a state file behind.

``azhpc emulator start`` runs Azurite and the Batch emulator in a background process and writes
where they listen, with the keys to reach them, to a state file readable only by its owner
(``$AZHPC_EMULATOR_STATE``, default ``~/.azhpc/emulator.json``, mode 0600).
``azhpc.connect("emulated")`` then uses them instead of starting its own: every notebook of a
workshop sees the same lake and the same pools. :func:`discover` ignores a state file whose
process has gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["EmulatorState", "discover", "remove", "save", "state_path"]

#: The environment variable naming the state file.
STATE_VARIABLE = "AZHPC_EMULATOR_STATE"


@dataclass(frozen=True)
class EmulatorState:
    """Where the workshop emulators listen (and the keys: never print this object's fields).

    Attributes
    ----------
    pid
        The process running both emulators.
    batch_url, batch_account_name, batch_account_key
        The Batch emulator's endpoint and SharedKey account.
    azurite_port
        Azurite's Blob port on 127.0.0.1 (the well-known development account).
    """

    pid: int
    batch_url: str
    batch_account_name: str
    batch_account_key: str
    azurite_port: int

    def __repr__(self) -> str:
        return (
            f"EmulatorState(pid={self.pid}, batch_url={self.batch_url!r}, "
            f"azurite_port={self.azurite_port})"
        )

    def healthy(self) -> bool:
        """Whether the process is alive and the Batch emulator answers its health probe."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, someone else's
        try:
            with urllib.request.urlopen(f"{self.batch_url}/_emulator/health", timeout=3) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def health(self) -> dict[str, Any]:
        """The Batch emulator's health record (account, pool count)."""
        with urllib.request.urlopen(f"{self.batch_url}/_emulator/health", timeout=3) as r:
            return dict(json.loads(r.read()))


def state_path() -> Path:
    """``$AZHPC_EMULATOR_STATE``, else ``~/.azhpc/emulator.json``."""
    explicit = os.environ.get(STATE_VARIABLE)
    return Path(explicit) if explicit else Path.home() / ".azhpc" / "emulator.json"


def save(state: EmulatorState) -> Path:
    """Write the state file, readable and writable by its owner only; return its path."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(state), out)
    os.replace(temporary, path)
    return path


def load() -> EmulatorState | None:
    """The state file's content, or ``None`` when there is none (or it is unreadable)."""
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
        return EmulatorState(**data)
    except (OSError, ValueError, TypeError):
        return None


def discover() -> EmulatorState | None:
    """The running workshop emulators, or ``None`` (no state file, or its process is gone)."""
    state = load()
    return state if state is not None and state.healthy() else None


def remove(pid: int | None = None) -> None:
    """Delete the state file (only if it belongs to ``pid``, when given)."""
    path = state_path()
    if pid is not None:
        state = load()
        if state is not None and state.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
