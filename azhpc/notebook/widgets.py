"""The progress widget: a live view of a job in a Jupyter notebook.

:class:`JobWidget` implements :class:`azhpc.progress.JobView`. The progress watcher creates it
once a job has run past its grace period and calls :meth:`JobWidget.refresh` from its
background thread; the widget reads only the job's plain counters
(:attr:`~azhpc.core.job.Job.progress`) and the first failure's remote traceback. It holds no
credentials, URLs or payloads: nothing but counts, the job's id and name, and that traceback.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING

import ipywidgets as widgets
from IPython.display import display

from azhpc.progress import format_cost

if TYPE_CHECKING:
    from azhpc.core.job import Job, Progress

__all__ = ["JobWidget", "format_counts", "format_rate"]


def format_counts(progress: Progress) -> dict[str, int]:
    """The counts the widget shows, by label."""
    return {
        "queued": progress.queued + progress.preparing,
        "running": progress.running,
        "succeeded": progress.succeeded,
        "failed": progress.failed,
        "retried": progress.retried,
        "requeued": progress.requeued,
    }


def format_rate(progress: Progress) -> str:
    """Elapsed time and throughput: ``"12.3 s · 4.1 tasks/s"``."""
    return f"{progress.elapsed:.1f} s · {progress.rate:.1f} tasks/s"


_COLORS = {
    "queued": "#757575",
    "running": "#1565c0",
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "retried": "#ef6c00",
    "requeued": "#6a1b9a",
}


class JobWidget:
    """A progress bar, counts by state, elapsed time and rate, and the first failure.

    Parameters
    ----------
    job
        The job to show. The widget is displayed (``IPython.display.display``) at once.

    Attributes
    ----------
    bar
        The ``IntProgress`` bar: completed tasks out of the total.
    counts
        An ``HTML`` line with the counts by state.
    timing
        An ``HTML`` line with the elapsed time, tasks per second and, on a priced pool, the
        estimated cost so far.
    failure
        An ``Accordion`` (collapsed) holding the first failure's remote traceback; hidden
        until a task fails.
    box
        The container that is displayed.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self._lock = threading.Lock()
        self._failure_shown = False
        total = max(job.progress.total, 1)
        self.bar = widgets.IntProgress(
            value=0,
            min=0,
            max=total,
            description=_short(job.name, 24),
            bar_style="info",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="60%"),
        )
        self.counts = widgets.HTML()
        self.timing = widgets.HTML()
        self._traceback = widgets.HTML()
        self.failure = widgets.Accordion(children=[self._traceback], selected_index=None)
        self.failure.layout.display = "none"
        self.box = widgets.VBox([widgets.HBox([self.bar, self.timing]), self.counts, self.failure])
        self.refresh()
        display(self.box)

    def refresh(self) -> None:
        """Show the job's current counts (safe to call from any thread)."""
        with self._lock:
            progress = self.job.progress
            counts = format_counts(progress)
            self.bar.max = max(progress.total, 1)
            self.bar.value = progress.completed
            if progress.failed:
                self.bar.bar_style = "danger"
            elif progress.finished:
                self.bar.bar_style = "success"
            self.counts.value = " &nbsp; ".join(
                f'<span style="color:{_COLORS[label]}">{label} <b>{count}</b></span>'
                for label, count in counts.items()
            )
            cost = format_cost(progress)
            self.timing.value = (
                f"<code>{progress.completed}/{progress.total}</code> &nbsp; "
                f"{html.escape(format_rate(progress))}"
                + (
                    f" &nbsp; <span title='offline estimate'>{html.escape(cost)}</span>"
                    if cost
                    else ""
                )
            )
            if not self._failure_shown:
                self._show_failure()

    def _show_failure(self) -> None:
        info = self.job.first_failure()
        if info is None or info.error is None:
            return
        error = info.error
        text = error.traceback.rstrip()
        self._traceback.value = (
            f'<pre style="white-space:pre-wrap;font-size:90%">{html.escape(text)}</pre>'
        )
        self.failure.set_title(
            0, _short(f"{info.task_id} failed: {error.short_type}: {error.message}", 120)
        )
        self.failure.layout.display = None
        self._failure_shown = True

    def close(self) -> None:
        """Show the final counts; the widget stays in the output as the job's record."""
        self.refresh()

    @property
    def failure_text(self) -> str:
        """The remote traceback shown in the accordion (``""`` until a task fails)."""
        return html.unescape(self._traceback.value.split(">", 1)[-1].rsplit("</pre>", 1)[0])


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
