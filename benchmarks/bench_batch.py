"""Batch backend on the emulator: submit 10,000 tasks, gather 10,000 small results.

Run by hand (``./dev bench bench_batch [SUBMIT_TASKS [RUN_TASKS]]``, default 10,000 and
10,000); figures go to docs/benchmarks.md. Everything
goes through the real azure-batch SDK to azhpc's Batch emulator, the lake on Azurite.

Measured, in one run:

* **submit**: ``pool.submit_map(fn, range(N), chunksize=1)`` until it returns (payloads
  staged in the lake, job created, N tasks added), next to the request counts; baseline: the
  SDK's own ``create_tasks`` of N bare tasks (same request count, no staging) on the same
  emulator.
* **run**: until ``job.result()`` returns with every value (N task processes on this machine:
  2 nodes x 4 slots); reported for scale, no target.
* **gather**: ``azhpc.attach(job_id).result()`` in a fresh session (reads and verifies N sealed
  outcomes from the lake, runs nothing); baseline: reading the same N blobs with adlfs
  ``cat`` (no seal check, no unpickling).
"""

from __future__ import annotations

import sys
import time

import azhpc


def tiny(x: int) -> int:
    return x * 3


def main(tasks: int = 10_000, run_tasks: int | None = None) -> None:
    """Submit ``tasks`` tasks (then cancel them if ``run_tasks`` is smaller), and run and
    gather ``run_tasks`` tasks (default: the same job)."""
    run_tasks = tasks if run_tasks is None else run_tasks
    with azhpc.connect("emulated", progress=False) as session:
        emulator = session.backend.account.emulator
        client = session.backend.account.client()
        with azhpc.Pool(
            "bench", "Standard_D2s_v5", nodes=2, task_slots_per_node=4, session=session
        ) as pool:
            # Baseline submit: the SDK alone, bare tasks, into a job on a pool-less queue.
            from azure.batch import models

            client.create_job(
                models.BatchJobCreateOptions(
                    {"id": "baseline", "poolInfo": {"poolId": "no-such-pool"}}
                )
            )
            bare = [
                models.BatchTaskCreateOptions({"id": f"t{i:05d}", "commandLine": "true"})
                for i in range(tasks)
            ]
            started = time.perf_counter()
            client.create_tasks("baseline", bare, max_concurrency=8)
            baseline_submit = time.perf_counter() - started

            emulator.reset_request_counts()
            started = time.perf_counter()
            job = pool.submit_map(tiny, range(tasks), chunksize=1)
            submit = time.perf_counter() - started
            submit_counts = emulator.request_counts()
            if run_tasks != tasks:
                job.cancel()
                emulator.reset_request_counts()
                started = time.perf_counter()
                job = pool.submit_map(tiny, range(run_tasks), chunksize=1)
            emulator.reset_request_counts()
            result = job.result()
            run = time.perf_counter() - started
            run_counts = emulator.request_counts()
            assert result == [tiny(x) for x in range(run_tasks)]
            job_id = job.job_id

            store = session.store
            paths = [store._outcome_path(job_id, t.task_id) for t in job.tasks]
            started = time.perf_counter()
            raw = store.fs.cat(paths)
            baseline_gather = time.perf_counter() - started
            assert len(raw) == run_tasks

            fresh = azhpc.Pool("bench", session=session)
            started = time.perf_counter()
            again = azhpc.attach(job_id, pool=fresh).result()
            gather = time.perf_counter() - started
            assert again == result
            fresh.close()

    print(f"tasks submitted: {tasks}; tasks run and gathered: {run_tasks}")
    print(
        f"submit: azhpc {submit:.2f} s, SDK create_tasks of bare tasks {baseline_submit:.2f} s, "
        f"ratio {submit / baseline_submit:.2f}; requests: {submit_counts}"
    )
    polls = run_counts.get("Job_GetTaskCounts", 0)
    print(
        f"run to last result: {run:.1f} s ({run_tasks / run:.0f} tasks/s); requests while "
        f"running: {run_counts} ({polls} polls)"
    )
    print(
        f"gather {run_tasks} results (attach in a fresh session): azhpc {gather:.2f} s, adlfs cat "
        f"of the same blobs {baseline_gather:.2f} s, ratio {gather / baseline_gather:.2f}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
