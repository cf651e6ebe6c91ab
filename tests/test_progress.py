"""Progress displays: chosen by where the code runs, shown only after the grace period."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from azhpc import progress


def wait_for_gate(path):
    while not os.path.exists(path):
        threading.Event().wait(0.02)
    return 1


def test_choose_view_outside_jupyter():
    assert progress.choose_view(False) is None
    assert progress.choose_view(True) == "text"  # asked for explicitly: a text bar


def test_text_view_shows_counts_by_state(local_session, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    job = local_session.submit_map(lambda x: x, range(6), chunksize=2)
    job.result(timeout=60)
    view = progress.TextView(job)
    view.close()
    text = stream.getvalue()
    assert "3/3" in text and "ok=3" in text and "failed=0" in text


def test_quick_job_shows_nothing(local_session, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    job = local_session.submit(abs, -1)
    watcher = progress.watch(job, enabled=True, after=30.0)
    assert job.result(timeout=60) == 1
    watcher.close()
    assert watcher.view is None and stream.getvalue() == ""


def test_slow_job_shows_a_bar_after_the_grace_period(local_session, tmp_path, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    gate = str(tmp_path / "gate")
    job = local_session.submit(wait_for_gate, gate)
    watcher = progress.watch(job, enabled=True, after=0.0)
    from tests.conftest import wait_until

    wait_until(lambda: watcher.view is not None, what="the view to appear")
    Path(gate).write_text("")
    assert job.result(timeout=60) == 1
    watcher.close()
    assert "1/1" in stream.getvalue()


def test_laptop_jobs_show_no_cost(local_session, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    job = local_session.submit_map(abs, [-1, -2], chunksize=1)
    job.result(timeout=60)
    assert job.progress.cost is None and progress.format_cost(job.progress) == ""
    progress.TextView(job).close()
    assert "cost" not in stream.getvalue()


def test_text_view_shows_the_cost_so_far_from_the_rate(local_session, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    job = local_session.submit_map(abs, [-1, -2], chunksize=1)
    job.result(timeout=60)
    job.set_cost_rate(18.0, "EUR")
    p = job.progress
    assert p.cost == 18.0 * p.elapsed / 3600 > 0
    progress.TextView(job).close()
    text = stream.getvalue()
    assert f"≈ {p.cost:.4f} EUR so far at 18.00 EUR/h" in text
