"""The per-node view of a run on a pool: each node's state and start task, which task (or MPI
sub-task) it runs, and the end of that task's stdout, live.

:class:`NodeView` reads the service: one ``List Nodes`` per refresh, one ``List Subtasks`` per
running multi-instance task, and two small requests (file properties, then a byte range) per
running task for the stdout tail. :func:`watch_nodes` refreshes it in a background thread while
a job runs: a widget in Jupyter, changed lines on stderr in a terminal.
"""

from __future__ import annotations

import html
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azhpc.progress import choose_view

if TYPE_CHECKING:
    from azhpc.backends.batch.pool import Pool
    from azhpc.core.job import Job

__all__ = ["NodeRow", "NodeView", "watch_nodes"]

#: Bytes of a running task's stdout the view shows.
TAIL_BYTES = 400
#: Seconds between refreshes (the emulator: faster).
REFRESH, REFRESH_EMULATED = 3.0, 0.5


@dataclass(frozen=True)
class NodeRow:
    """One node in the view.

    Attributes
    ----------
    node_id, state
        The node and its Batch state (``idle``, ``running``, ``starttaskfailed``, ...).
    start_task
        Its start task's state (``completed``, ``running``, ...) and exit code, as text.
    task
        What of the job it runs or ran: ``task-00001``, or ``task-00000 sub-task 2`` for an
        MPI run (``""``: nothing of this job).
    stdout_tail
        The end of that task's stdout (the primary's, for MPI), while it runs.
    """

    node_id: str
    state: str
    start_task: str
    task: str
    stdout_tail: str


class NodeView:
    """A snapshot source: the nodes of ``pool`` and what ``job`` runs on them."""

    def __init__(self, pool: Pool, job: Job) -> None:
        self.pool = pool
        self.job = job

    def _batch_job_id(self) -> str | None:
        return self.pool.backend.batch_job_id(self.job.job_id)  # type: ignore[attr-defined]

    def snapshot(self) -> list[NodeRow]:
        """The rows, in node order."""
        batch_pool = self.pool.batch_pool
        client = batch_pool.account.client()
        batch_job = self._batch_job_id()
        placed: dict[str, str] = {}
        tails: dict[str, str] = {}
        for info in self.job.tasks:
            if not info.node:
                continue
            placed.setdefault(info.node, info.task_id)
            if batch_job and info.state.value == "running":
                for node_id, label in self._subtasks(client, batch_job, info.task_id):
                    placed[node_id] = label
                tails[info.node] = self._tail(client, batch_job, info.task_id)
        rows = []
        for node in batch_pool.nodes():
            start = node.start_task or "none"
            if node.start_task_exit_code is not None:
                start += f" (exit {node.start_task_exit_code})"
            rows.append(
                NodeRow(
                    node.node_id,
                    node.state,
                    start,
                    placed.get(node.node_id, ""),
                    tails.get(node.node_id, ""),
                )
            )
        return rows

    def _subtasks(self, client: Any, batch_job: str, task_id: str) -> list[tuple[str, str]]:
        if self.job.progress.total != 1:
            return []  # a multi-instance (MPI) run is a job of one task
        try:
            subtasks = list(client.list_subtasks(batch_job, task_id))
        except Exception:  # the view is a courtesy: never break the run it shows
            return []
        return [
            (s.node_info.node_id, f"{task_id} sub-task {s.id}")
            for s in subtasks
            if s.node_info is not None
        ]

    @staticmethod
    def _tail(client: Any, batch_job: str, task_id: str) -> str:
        try:
            size = client.get_task_file_properties(batch_job, task_id, "stdout.txt")
            length = int(getattr(size, "content_length", 0) or 0)
            if length == 0:
                return ""
            start = max(0, length - TAIL_BYTES)
            data = b"".join(
                client.download_task_file(
                    batch_job, task_id, "stdout.txt", ocp_range=f"bytes={start}-{length - 1}"
                )
            )
            return data.decode(errors="replace")
        except Exception:  # the file may not exist yet, or the task just ended
            return ""


def format_text(rows: list[NodeRow]) -> list[str]:
    """One line per node: ``tvmps_0001_d  running  start task completed  task-00000 | tail``."""
    lines = []
    for row in rows:
        tail = row.stdout_tail.strip().rsplit("\n", 1)[-1][:60] if row.stdout_tail else ""
        lines.append(
            f"{row.node_id:<16} {row.state:<16} start task {row.start_task:<16} "
            f"{row.task or '-':<24}{' | ' + tail if tail else ''}"
        )
    return lines


def format_html(rows: list[NodeRow]) -> str:
    """An HTML table of the rows (the widget's content)."""
    head = "".join(
        f"<th style='text-align:left;padding-right:1em'>{h}</th>"
        for h in ("node", "state", "start task", "runs", "stdout (end)")
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='padding-right:1em'>{html.escape(value)}</td>"
            for value in (row.node_id, row.state, row.start_task, row.task or "-")
        )
        + "<td><pre style='margin:0;font-size:85%;white-space:pre-wrap'>"
        + html.escape(row.stdout_tail.strip()[-TAIL_BYTES:])
        + "</pre></td></tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class _Watcher:
    def __init__(self, view: NodeView, widget: Any, interval: float) -> None:
        self.view = view
        self.widget = widget
        self.interval = interval
        self.last: list[tuple[str, str, str, str]] = []
        self._done = threading.Event()
        view.job.add_done_callback(lambda _: self._done.set())
        self._thread = threading.Thread(target=self._run, name="azhpc-nodeview", daemon=True)
        self._thread.start()

    def _show(self) -> None:
        rows = self.view.snapshot()
        if self.widget is not None:
            self.widget.value = format_html(rows)
            return
        # A terminal gets a line when a node's state or task changes (not at every new byte of
        # output); the line carries the output's last line at that moment.
        keys = [(r.node_id, r.state, r.start_task, r.task) for r in rows]
        for key, line in zip(keys, format_text(rows), strict=True):
            if key not in self.last:
                print(f"azhpc: {line}", file=sys.stderr, flush=True)
        self.last = keys

    def _run(self) -> None:
        while True:
            try:
                self._show()
            except Exception:  # a display must never break the run it shows
                pass
            if self._done.wait(self.interval):
                try:
                    self._show()  # the final state
                except Exception:
                    pass
                return


def watch_nodes(pool: Pool, job: Job, *, enabled: bool | None) -> _Watcher | None:
    """Show ``pool``'s nodes while ``job`` runs; ``None`` when nothing is to be shown here."""

    where = choose_view(enabled)
    if where is None:
        return None
    widget = None
    if where == "widget":
        import ipywidgets
        from IPython.display import display

        widget = ipywidgets.HTML()
        display(widget)
    interval = REFRESH_EMULATED if pool.backend.account.emulated else REFRESH
    return _Watcher(NodeView(pool, job), widget, interval)
