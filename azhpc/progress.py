"""Progress displays for running jobs.

A display observes a :class:`~azhpc.core.job.Job`'s plain counters (``job.progress``) from a
background thread; the job never knows a display exists. Nothing is shown until the job has
run for a short grace period, so quick jobs print nothing. Where the display goes:

- a Jupyter kernel with ipywidgets: a widget (:mod:`azhpc.notebook.widgets`);
- a terminal: a text bar (tqdm) on stderr;
- output redirected to a file or pipe: nothing, unless ``progress=True``.

Displays are found through a small registry of dotted paths, imported only when used.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from azhpc.core.job import Job, Progress

__all__ = ["JobView", "TextView", "choose_view", "format_cost", "watch"]

#: Seconds between display refreshes.
REFRESH = 0.2

VIEWS = {
    "widget": "azhpc.notebook.widgets:JobWidget",
    "text": "azhpc.progress:TextView",
}


class JobView(Protocol):
    """A display of one job: created when it should appear, refreshed, then closed."""

    def __init__(self, job: Job) -> None: ...

    def refresh(self) -> None:
        """Show the job's current counts."""

    def close(self) -> None:
        """Show the final counts and stop."""


def format_cost(progress: Progress) -> str:
    """The estimated cost so far and the hourly rate: ``"≈ 0.0123 EUR so far at 18.10 EUR/h"``
    (``""`` when the job has no rate: the laptop backends)."""
    cost = progress.cost
    if cost is None:
        return ""
    digits = 2 if cost >= 10 else 4
    return (
        f"≈ {cost:.{digits}f} {progress.currency} so far at "
        f"{progress.cost_per_hour:.2f} {progress.currency}/h"
    )


class TextView:
    """A tqdm bar on stderr: tasks completed, and counts by state."""

    def __init__(self, job: Job) -> None:
        from tqdm.auto import tqdm

        self.job = job
        self._bar = tqdm(
            total=job.progress.total,
            desc=job.name,
            unit="task",
            file=sys.stderr,
            leave=True,
            dynamic_ncols=True,
        )

    def refresh(self) -> None:
        p = self.job.progress
        self._bar.n = p.completed
        self._bar.set_postfix_str(
            f"queued={p.queued} running={p.running} ok={p.succeeded} "
            f"failed={p.failed} retried={p.retried}"
            + (f" requeued={p.requeued}" if p.requeued else "")
            + (f" cost {format_cost(p)}" if p.cost_per_hour is not None else ""),
            refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        self.refresh()
        self._bar.close()


def _in_jupyter_kernel() -> bool:
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    try:
        shell = shell_module.get_ipython()
    except AttributeError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def choose_view(enabled: bool | None) -> str | None:
    """Which display to use: ``"widget"``, ``"text"`` or ``None`` (nothing)."""
    if enabled is False:
        return None
    if _in_jupyter_kernel():
        try:
            importlib.import_module("ipywidgets")
            return "widget"
        except ImportError:
            return "text"
    if enabled or sys.stderr.isatty():
        return "text"
    return None


def _load_view(name: str) -> type[JobView]:
    module_name, _, attr = VIEWS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


class _Watcher:
    """Shows a view of ``job`` once it has run ``after`` seconds; refreshes until it ends."""

    def __init__(self, job: Job, view: str, after: float) -> None:
        self.job = job
        self.view_name = view
        self.after = after
        self.view: JobView | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        job.add_done_callback(lambda _: self._done.set())
        self._thread = threading.Thread(target=self._run, name="azhpc-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._done.wait(self.after) or self._stop.is_set():
            return  # a quick job: show nothing
        try:
            self.view = _load_view(self.view_name)(self.job)
            while not self._done.wait(REFRESH) and not self._stop.is_set():
                self.view.refresh()
        except Exception:  # a display must never break the job it shows
            return

    def close(self) -> None:
        """Stop refreshing and show the final state."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.view is not None:
            try:
                self.view.close()
            except Exception:
                pass


def watch(job: Job, *, enabled: bool | None = None, after: float = 1.0) -> _Watcher | None:
    """Start showing ``job``'s progress once it has run ``after`` seconds.

    Returns the watcher (call ``close()`` when done waiting), or ``None`` when nothing is to
    be shown here.
    """
    view = choose_view(enabled)
    if view is None:
        return None
    return _Watcher(job, view, after)
