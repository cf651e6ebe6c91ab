"""Progress of lake transfers: an fsspec ``Callback`` feeding a plain counter.

The transfer code (fsspec, adlfs) calls the callback; the callback updates a
:class:`TransferCounter`; a display, if any, only reads the counter. Displays come from a small
registry of dotted paths (``TRANSFER_VIEWS``), imported only when shown: the text view (tqdm on
stderr) is here; a notebook widget view can be registered under ``"widget"``. Nothing is shown
for small or quick transfers.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import threading
import time
from typing import Any, Protocol

from fsspec.callbacks import Callback

from azhpc.progress import choose_view

__all__ = [
    "LARGE_TRANSFER",
    "TRANSFER_VIEWS",
    "TextTransferView",
    "TransferCounter",
    "TransferProgress",
    "TransferView",
]

#: Transfers at least this many bytes show progress (when shown at all).
LARGE_TRANSFER = 32 * 2**20

#: Seconds a large transfer runs before its progress shows.
GRACE = 1.0

#: Display name -> ``"module:Class"``; a class taking a :class:`TransferCounter`.
TRANSFER_VIEWS = {"text": "azhpc.lake.progress:TextTransferView"}


@dataclasses.dataclass
class TransferCounter:
    """Plain counts of one transfer (``put`` or ``get``), updated as it runs.

    Attributes
    ----------
    description : str
        What is moving, e.g. ``"put /raw/x.parquet"``.
    files_total, files_done : int
        Entries to move and moved (fsspec counts the folders of a recursive copy, too).
    bytes_total, bytes_done : int
        Bytes to move (as far as known), bytes moved.
    started, finished : float or None
        ``time.monotonic()`` at the start and the end.
    """

    description: str = ""
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        """Seconds the transfer took (so far)."""
        return (self.finished or time.monotonic()) - self.started


class TransferView(Protocol):
    """A display of a transfer: created when it should appear, refreshed, closed."""

    def __init__(self, counter: TransferCounter) -> None: ...

    def refresh(self) -> None:
        """Show the counter's current counts."""

    def close(self) -> None:
        """Show the final counts and stop."""


class TextTransferView:
    """A tqdm bar on stderr, in bytes."""

    def __init__(self, counter: TransferCounter) -> None:
        from tqdm.auto import tqdm

        self.counter = counter
        self._bar = tqdm(
            total=counter.bytes_total or None,
            desc=counter.description,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            leave=True,
            dynamic_ncols=True,
        )

    def refresh(self) -> None:
        c = self.counter
        self._bar.total = c.bytes_total or None
        self._bar.n = c.bytes_done
        if c.files_total > 1:
            self._bar.set_postfix_str(f"files={c.files_done}/{c.files_total}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self.refresh()
        self._bar.close()


def _choose_view(enabled: bool | None) -> str | None:

    name = choose_view(enabled)
    if name is not None and name not in TRANSFER_VIEWS:
        name = "text"
    return name


class TransferProgress(Callback):
    """The fsspec callback of a transfer: counts files, and bytes through per-file children.

    fsspec calls ``set_size``/``relative_update`` on it with file counts and hands each file's
    copy a child (``branched``) that reports bytes. Both feed :attr:`counter`.

    Parameters
    ----------
    counter
        The counter to update; a new one if omitted.
    show
        ``True``: show progress; ``False``: never; ``None``: for large transfers (at least
        ``LARGE_TRANSFER`` bytes) that run longer than ``GRACE`` seconds, where a display fits
        (a terminal or a notebook).
    """

    def __init__(self, counter: TransferCounter | None = None, *, show: bool | None = None) -> None:
        super().__init__()
        self.counter = counter if counter is not None else TransferCounter()
        self.show = show
        self._lock = threading.Lock()
        self._view: TransferView | None = None
        self._view_failed = show is False

    # -- files (fsspec's outer callback) --------------------------------------------------------

    def set_size(self, size: int) -> None:
        super().set_size(size)
        self.counter.files_total = size

    def call(self, *args: Any, **kwargs: Any) -> None:
        self.counter.files_done = self.value
        self._update_view()

    def branched(self, path_1: Any, path_2: Any, **kwargs: Any) -> _FileBytes:
        """The child callback of one file's copy."""
        return _FileBytes(self)

    # -- bytes (called by children) -------------------------------------------------------------

    def _add(self, total: int, done: int) -> None:
        with self._lock:
            self.counter.bytes_total += total
            self.counter.bytes_done += done
        self._update_view()

    def _update_view(self) -> None:
        if self._view_failed:
            return
        try:
            if self._view is None:
                c = self.counter
                wanted = self.show or (
                    c.bytes_total >= LARGE_TRANSFER and time.monotonic() - c.started >= GRACE
                )
                if not wanted:
                    return
                name = _choose_view(self.show)
                if name is None:
                    self._view_failed = True
                    return
                module, _, attr = TRANSFER_VIEWS[name].partition(":")
                self._view = getattr(importlib.import_module(module), attr)(c)
            self._view.refresh()
        except Exception:  # a display must never break the transfer it shows
            self._view_failed = True

    def close(self) -> None:
        """Mark the transfer finished and close the display, if one was shown."""
        self.counter.finished = time.monotonic()
        if self._view is not None:
            try:
                self._view.close()
            except Exception:
                pass
            self._view = None


class _FileBytes(Callback):
    """One file's bytes, forwarded to the parent's counter as deltas."""

    def __init__(self, parent: TransferProgress) -> None:
        super().__init__()
        self.parent = parent
        self._total = 0
        self._done = 0

    def set_size(self, size: int) -> None:
        super().set_size(size)
        size = int(size or 0)
        delta, self._total = size - self._total, size
        if delta:
            self.parent._add(delta, 0)

    def call(self, *args: Any, **kwargs: Any) -> None:
        value = int(self.value or 0)
        delta, self._done = value - self._done, value
        if delta:
            self.parent._add(0, delta)
