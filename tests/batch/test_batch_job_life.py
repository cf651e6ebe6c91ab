"""A Batch job's life against an emulator as strict as Azure (issue 12): polls filter only on
what Batch documents as filterable, a job switches to ``terminatejob`` only once its tasks are
added, finished jobs are deleted, terminating pauses between status requests, SAS URLs outlive
a long queue, and throttled requests are ridden through."""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import azhpc
from tests.conftest import batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


@pytest.fixture(scope="module")
def emulated() -> Any:
    """An emulated session (Azurite + Batch emulator) with a pool of one 2-slot node."""
    with azhpc.connect("emulated", workers=1, slots=2, progress=False) as session:
        yield session


def _job_ids(client: Any) -> list[str]:
    return [j.id for j in client.list_jobs()]


def _active_job_ids(client: Any) -> list[str]:
    return [j.id for j in client.list_jobs(filter="state eq 'active'")]


def _gated(gate: Path) -> Any:
    """A task function that waits for ``gate`` to exist, then returns its input."""

    def wait_for_gate(x: int) -> int:
        import os
        import time

        while not os.path.exists(gate):
            time.sleep(0.02)
        return x

    return wait_for_gate


def square(x: int) -> int:
    return x * x


def test_poll_filter_is_one_batch_accepts() -> None:
    from azhpc.backends.batch.watch import task_filter
    from azhpc.emulator.batch.odata import FILTERABLE, compile_filter

    compile_filter(task_filter(dt.datetime.now(dt.UTC)), FILTERABLE["tasks"])  # no 400


def test_polls_count_retries_from_execution_info(emulated: Any, tmp_path: Path) -> None:
    marker = tmp_path / "attempted"

    def fails_once(x: int) -> int:
        import os

        path = f"{marker}-{x}"
        if not os.path.exists(path):
            open(path, "w").close()
            raise RuntimeError("the first attempt fails")
        return x * 2

    job = emulated.submit_map(fails_once, range(3), chunksize=1, retries=1)
    assert job.result(timeout=60) == [0, 2, 4]
    assert job.progress.retried == 3
    assert [t.retry_count for t in job.tasks] == [1, 1, 1]


def test_job_ends_by_itself_only_once_every_task_is_added(
    emulated: Any, client: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    job = emulated.submit_map(_gated(gate), range(4), chunksize=1)
    batch_job = client.get_job(job.job_id)
    assert batch_job.state == "active"
    assert batch_job.all_tasks_complete_mode == "terminatejob"
    assert sum(1 for _ in client.list_tasks(job.job_id, select=["id"])) == 4
    gate.touch()
    assert job.result(timeout=60) == [0, 1, 2, 3]


def test_job_whose_tasks_all_finished_before_the_switch_still_ends(
    emulated: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = emulated.backend
    switch = backend._terminate_when_all_complete

    def late_switch(batch_job_id: str) -> None:
        wait_until(
            lambda: client.get_job_task_counts(batch_job_id).task_counts.completed == 2,
            timeout=60,
            what="both tasks done before the switch",
        )
        switch(batch_job_id)

    monkeypatch.setattr(backend, "_terminate_when_all_complete", late_switch)
    job = emulated.submit_map(square, range(2), chunksize=1)
    assert job.result(timeout=60) == [0, 1]
    wait_until(lambda: job.job_id not in _active_job_ids(client), timeout=30, what="job's end")


def test_finished_job_is_deleted_once_its_outcomes_are_gathered(emulated: Any, client: Any) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    job = emulated.submit_map(square, range(3), chunksize=1)
    assert job.result(timeout=60) == [0, 1, 4]
    wait_until(lambda: job.job_id not in _job_ids(client), timeout=30, what="the job deleted")
    with pytest.raises(ResourceNotFoundError):
        list(client.list_tasks(job.job_id))


def test_cancelled_job_is_terminated_with_a_pause_between_status_requests(
    emulated: Any, client: Any, emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intervals: list[float] = []
    terminate = client.begin_terminate_job

    def watched_terminate(*args: Any, **kwargs: Any) -> Any:
        intervals.append(kwargs.get("polling_interval", 5))
        return terminate(*args, **kwargs)

    monkeypatch.setattr(client, "begin_terminate_job", watched_terminate)
    # The emulator ends a terminating job after `delete` seconds; the SDK polls its state
    # meanwhile, without a pause when told polling_interval=0.
    engine = emulator._engine
    monkeypatch.setattr(engine, "timings", dataclasses.replace(engine.timings, delete=1.0))
    job = emulated.submit_map(_gated(tmp_path / "never"), range(2), chunksize=1)
    wait_until(lambda: job.progress.running > 0, timeout=60, what="a running task")
    emulator.reset_request_counts()
    job.cancel()

    def state() -> str:
        job_state = next(j.state for j in client.list_jobs() if j.id == job.job_id)
        return str(getattr(job_state, "value", job_state))

    wait_until(lambda: state() == "completed", timeout=30, what="the job terminated")
    assert intervals == [0.05]  # the emulator's; 5 s on Azure (next test)
    assert emulator.request_counts().get("Job_Get", 0) <= 1.0 / 0.05 + 3


def test_terminate_and_delete_poll_at_the_sdk_interval_on_azure() -> None:
    from azhpc.backends.batch.account import BatchAccount
    from azhpc.backends.batch.backend import LRO_INTERVAL, BatchBackend

    azure = SimpleNamespace(account=BatchAccount("https://acct.westeurope.batch.azure.com", "a"))
    assert BatchBackend._lro_interval(azure) == LRO_INTERVAL == 5.0  # type: ignore[arg-type]


def test_task_sas_urls_outlive_a_long_queue(emulated: Any, client: Any, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    job = emulated.submit_map(_gated(gate), range(1), chunksize=1)
    try:
        task = client.get_task(job.job_id, job.tasks[0].task_id)
        urls = [f.http_url for f in task.resource_files]
        urls += [f.destination.container.container_url for f in task.output_files]
        expiries = [
            dt.datetime.fromisoformat(urllib.parse.parse_qs(url.split("?", 1)[1])["se"][0])
            for url in urls
        ]
        week_less_a_few_hours = dt.datetime.now(dt.UTC) + dt.timedelta(days=6, hours=20)
        assert min(expiries) > week_less_a_few_hours
    finally:
        gate.touch()
    assert job.result(timeout=60) == [0]


def test_throttled_service_is_ridden_through(emulated: Any, emulator: Any) -> None:
    emulated.submit_map(square, range(1), chunksize=1).result(timeout=120)  # the pool is up
    emulator.reset_request_counts()
    batch = ["Job_Add", "Task_AddCollection", "Job_Patch", "Job_GetTaskCounts"]
    emulator.throttle(batch, status=503, count=1, retry_after=1)
    emulator.throttle(["Task_List"], status=429, count=2, retry_after=1)
    job = emulated.submit_map(square, range(5), chunksize=1)
    assert job.result(timeout=120) == [x * x for x in range(5)]
    counts = emulator.request_counts()
    for operation in batch:
        assert counts[operation] >= 2, (operation, counts)  # refused once, then answered
    assert counts["Task_List"] >= 3
