"""The Batch backend end to end: the real azure-batch SDK against azhpc's Batch emulator, the
lake on Azurite. Pools are created and deleted through ``azhpc.Pool``; what the service saw is
read back through the SDK and the emulator's request counts."""

from __future__ import annotations

import math
import os
import signal
import threading
from typing import Any

import pytest

import azhpc
from azhpc.backends.batch.watch import PAGE_SIZE
from tests.conftest import batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


@pytest.fixture(scope="module")
def emulated() -> Any:
    """An emulated session (Azurite + Batch emulator) for this module's pools."""
    with azhpc.connect("emulated", workers=1, progress=False) as session:
        yield session


def _pools(client: Any) -> list[str]:
    return [p.id for p in client.list_pools()]


def _active_jobs(client: Any) -> list[str]:
    return [j.id for j in client.list_jobs() if str(getattr(j.state, "value", j.state)) == "active"]


def square(x: int) -> int:
    return x * x


def test_pool_runs_a_500_task_map_and_is_deleted_after(emulated, client):
    with azhpc.Pool(
        "e2e", "Standard_D2s_v5", nodes=2, task_slots_per_node=2, session=emulated
    ) as pool:
        assert "e2e" in _pools(client)
        assert set(pool.nodes().values()) <= {"idle", "running"}
        job = pool.submit_map(square, range(500), chunksize=1)
        assert len(job.tasks) == 500
        assert job.result(timeout=300) == [x * x for x in range(500)]
        assert {t.node for t in job.tasks} <= set(pool.nodes())
    assert _pools(client) == []
    assert _active_jobs(client) == []


def test_keyboard_interrupt_mid_job_leaves_no_pool_and_no_active_job(emulated, client):
    import time as _time

    def slow(x: int) -> int:
        _time.sleep(30)
        return x

    def interrupt_once_running(job_box: list[Any]) -> None:
        wait_until(lambda: job_box and job_box[0].progress.running > 0, timeout=60)
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: it wakes the waiting main thread

    box: list[Any] = []
    with (
        pytest.raises(KeyboardInterrupt),
        azhpc.Pool("ctrl-c", "Standard_D2s_v5", nodes=1, session=emulated) as pool,
    ):
        watcher = threading.Thread(target=interrupt_once_running, args=(box,), daemon=True)
        watcher.start()
        job = pool.submit_map(slow, range(4), chunksize=1)
        box.append(job)
        job.result(timeout=120)
    assert job.cancelled() or job.done()
    assert _pools(client) == []
    assert _active_jobs(client) == []


def test_10000_tasks_in_100_add_collection_requests_and_polls_within_budget(
    emulated, client, emulator
):
    import time as _time

    def wait(x: int) -> int:
        _time.sleep(60)
        return x

    with azhpc.Pool("many", "Standard_D2s_v5", nodes=1, session=emulated) as pool:
        pool.backend.poll_interval = None  # this test polls by hand, one poll at a time
        emulator.reset_request_counts()
        job = pool.submit_map(wait, range(10_000), chunksize=1)
        counts = emulator.request_counts()
        assert counts.get("Task_AddCollection") == 100
        assert counts.get("Task_Add", 0) == 0
        pool.backend.poll_once(job.job_id)  # settle the first poll (counts change from nothing)
        for _ in range(3):
            unfinished = sum(1 for t in job.tasks if t.state.value != "completed")
            emulator.reset_request_counts()
            pool.backend._runs[job.job_id].last_counts = None  # force the full list
            pool.backend.poll_once(job.job_id)
            polled = emulator.request_counts()
            assert polled.get("Job_GetTaskCounts") == 1
            assert sum(polled.values()) <= 1 + math.ceil(unfinished / PAGE_SIZE), polled
        job.cancel()
    assert _pools(client) == []
    assert _active_jobs(client) == []


def test_preempted_node_requeues_its_tasks_and_the_job_completes(emulated, emulator, tmp_path):
    started = tmp_path / "started"
    started.mkdir()

    def marked(x: int) -> int:
        import os
        import time as _time

        (started / f"{x}-{os.getpid()}").touch()
        _time.sleep(1.0)
        return x + 100

    with azhpc.Pool("preempt", "Standard_D2s_v5", nodes=2, session=emulated) as pool:
        job = pool.submit_map(marked, range(6), chunksize=1)
        wait_until(lambda: job.progress.running > 0, timeout=60, what="a running task")
        victim = next(t.node for t in job.tasks if t.state.value == "running")
        emulator.preempt("preempt", victim)
        assert job.result(timeout=120) == [x + 100 for x in range(6)]
        assert job.progress.requeued >= 1
        assert any(t.requeue_count >= 1 for t in job.tasks)
        # ... and the progress display shows it.
        from azhpc.notebook.widgets import format_counts

        assert format_counts(job.progress)["requeued"] == job.progress.requeued


def test_failed_task_brings_back_its_remote_traceback(batch_session):
    def boom(x: int) -> int:
        raise ValueError(f"bad value {x}")

    with pytest.raises(azhpc.TaskError) as caught:
        batch_session.map(boom, [7], chunksize=1)
    assert caught.value.remote_type == "ValueError"
    assert "bad value 7" in str(caught.value)
    assert "boom" in caught.value.remote_traceback


def test_task_that_kills_its_process_reports_exit_code_and_stderr_tail(batch_session):
    def die(x: int) -> int:
        import os
        import sys

        print("about to die", file=sys.__stderr__, flush=True)
        os._exit(3)

    with pytest.raises(azhpc.TaskError) as caught:
        batch_session.map(die, [1], chunksize=1)
    message = str(caught.value)
    assert "exit code 3" in message
    assert "about to die" in message


def test_task_whose_worker_dies_is_run_again_as_the_guide_says(batch_session, tmp_path):
    """docs/user-guide.md: a task that kills its worker process is run again up to 3 times,
    counted in its retry_count (retries=0: that is for functions that raise)."""
    marker = tmp_path / "attempts"

    def dies_twice(x: int) -> int:
        with marker.open("a") as f:
            f.write(".")
        if len(marker.read_text()) < 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return x + 1

    job = batch_session.submit_map(dies_twice, [1], chunksize=1)
    assert job.result(timeout=120) == [2]
    assert marker.read_text() == "..."
    assert job.tasks[0].retry_count == 2 and job.progress.retried == 2


def test_task_whose_worker_always_dies_fails_after_three_retries(batch_session, tmp_path):
    marker = tmp_path / "attempts"

    def always_dies(x: int) -> int:
        with marker.open("a") as f:
            f.write(".")
        os.kill(os.getpid(), signal.SIGKILL)
        return x

    job = batch_session.submit_map(always_dies, [1], chunksize=1)
    with pytest.raises(azhpc.TaskError) as caught:
        job.result(timeout=120)
    assert caught.value.remote_type == "azhpc.errors.WorkerLostError"
    assert "died 4 times, so it is not retried again" in str(caught.value)
    assert marker.read_text() == "...."  # 1 + max_worker_losses (3)
    assert job.tasks[0].retry_count == 3


def test_function_that_raises_runs_retries_more_times_not_more(batch_session, tmp_path):
    marker = tmp_path / "attempts"

    def raises(x: int) -> int:
        with marker.open("a") as f:
            f.write(".")
        raise OSError(f"attempt {len(marker.read_text())}")

    job = batch_session.submit_map(raises, [1], chunksize=1, retries=1)
    with pytest.raises(azhpc.TaskError, match="after 2 attempts") as caught:
        job.result(timeout=120)
    assert caught.value.remote_message == "attempt 2"
    assert marker.read_text() == ".."  # Batch did not run it again on top of retries=1
    assert job.tasks[0].retry_count == 1


def test_outcome_changed_in_storage_is_refused_not_unpickled(batch_session):
    from azhpc.core.signing import seal

    store = batch_session.store
    job = batch_session.submit_map(square, [3], chunksize=1)
    assert job.result(timeout=60) == [9]
    task_id = job.tasks[0].task_id
    forged = seal(b"another key" * 3, b"not a pickle")
    store.fs.pipe_file(store._outcome_path(job.job_id, task_id), forged)
    with pytest.raises(azhpc.core.signing.IntegrityError):
        store.read_outcome(job.job_id, task_id)
