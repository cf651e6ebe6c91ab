"""The progress widget: counts, the grace period, the failure's traceback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc import progress
from azhpc.notebook import widgets


def reciprocal(x: float) -> float:
    return 1 / x


def wait_for_file(path: str) -> str:
    """A task that runs until the test creates ``path`` (at most 60 s)."""
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.01)
    return path


def poll(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {condition}")
        time.sleep(0.01)


@pytest.fixture
def displayed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the widget module displays, recorded instead of shown."""
    shown: list[Any] = []
    monkeypatch.setattr(widgets, "display", shown.append)
    return shown


@pytest.fixture
def in_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the progress registry choose the widget, as in a Jupyter kernel."""
    monkeypatch.setattr(progress, "_in_jupyter_kernel", lambda: True)


def test_job_widget_shows_counts_of_finished_job(pool: azhpc.Session, displayed) -> None:
    job = pool.submit_map(reciprocal, [1, 2, 4, 8], chunksize=1)
    job.result(timeout=60)
    view = widgets.JobWidget(job)
    assert displayed == [view.box]
    assert view.bar.get_state()["value"] == 4 and view.bar.max == 4
    assert view.bar.bar_style == "success"
    counts = view.counts.get_state()["value"]
    for label, count in [("queued", 0), ("running", 0), ("succeeded", 4), ("failed", 0)]:
        assert f"{label} <b>{count}</b>" in counts
    assert "4/4" in view.timing.value and "tasks/s" in view.timing.value
    assert view.failure.layout.display == "none"


def test_job_widget_failure_traceback_in_accordion(pool: azhpc.Session, displayed) -> None:
    job = pool.submit_map(reciprocal, [1, 0, 2], chunksize=1, retries=1)
    with pytest.raises(azhpc.TaskError):
        job.result(timeout=60)
    view = widgets.JobWidget(job)
    view.close()
    assert "failed <b>1</b>" in view.counts.value and "retried <b>1</b>" in view.counts.value
    assert view.bar.bar_style == "danger"
    assert view.failure.layout.display is None  # visible
    assert view.failure.selected_index is None  # collapsed until clicked
    assert "ZeroDivisionError" in view.failure.get_title(0)
    assert "in reciprocal" in view.failure_text and "return 1 / x" in view.failure_text


def test_watch_quick_job_displays_nothing(pool: azhpc.Session, displayed, in_kernel) -> None:
    job = pool.submit(reciprocal, 4)
    assert job.result(timeout=60) == 0.25
    watcher = progress.watch(job, enabled=True, after=30)
    assert watcher is not None and watcher.view_name == "widget"
    watcher.close()
    assert watcher.view is None
    assert displayed == []


def test_watch_slow_job_displays_widget_after_grace(
    pool: azhpc.Session, displayed, in_kernel, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    job = pool.submit(wait_for_file, str(gate))
    watcher = progress.watch(job, enabled=True, after=0.05)
    try:
        poll(lambda: len(displayed) == 1)
        view = watcher.view
        assert isinstance(view, widgets.JobWidget)
        poll(lambda: "running <b>1</b>" in view.counts.value)
        gate.touch()
        job.result(timeout=60)
    finally:
        gate.touch()
        watcher.close()
    assert view.bar.value == 1 and "succeeded <b>1</b>" in view.counts.value
