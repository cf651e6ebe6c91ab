"""Autoscaled pools: the emulator evaluates Batch's formula language periodically on sampled task
counts, and an ``azhpc.Pool`` with an autoscale policy starts, runs a map and goes back to zero
nodes."""

from __future__ import annotations

import pytest

import azhpc
from azhpc.errors import EnvironmentMismatchError, PoolStartError
from azhpc.pools import Autoscale
from tests.conftest import batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)

FOLLOW_THEN_ZERO = Autoscale.follow_pending_tasks(max_nodes=2, slots_per_node=2) + (
    Autoscale.scale_to_zero_when_idle(idle_minutes=5)
)


# -- the emulated service ------------------------------------------------------------------------


def test_emulator_reevaluates_periodically_and_keeps_busy_nodes(batch_session) -> None:
    from azure.batch import models

    client = batch_session.backend.account.client()
    formula = (
        "// one node per pending task, at most 2\n"
        "$n = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5) < 70 ? "
        "max(0, $PendingTasks.GetSample(1)) : max($PendingTasks.GetSample(1));\n"
        "$TargetDedicatedNodes = min(2, $n);\n"
        "$NodeDeallocationOption = taskcompletion;"
    )
    client.create_pool(
        models.BatchPoolCreateOptions(
            id="periodic", vm_size="standard_d2s_v3", enable_auto_scale=True,
            auto_scale_formula=formula, auto_scale_evaluation_interval="PT5M",
        )
    )  # fmt: skip
    try:
        assert client.get_pool("periodic").auto_scale_run.results.startswith(
            "$TargetDedicatedNodes=0"
        )
        client.create_job(
            models.BatchJobCreateOptions(id="periodic-job", pool_info={"poolId": "periodic"})
        )
        client.create_task(
            "periodic-job", models.BatchTaskCreateOptions(id="t1", command_line="sleep 1")
        )
        client.create_task(
            "periodic-job", models.BatchTaskCreateOptions(id="t2", command_line="true")
        )
        wait_until(lambda: client.get_pool("periodic").current_dedicated_nodes == 2, timeout=30,
                   what="two nodes for two pending tasks")  # fmt: skip
        # t2 ends at once: the pool shrinks to one, but never takes the node running t1.
        wait_until(lambda: client.get_task("periodic-job", "t1").state == "completed", timeout=30)
        t1 = client.get_task("periodic-job", "t1")
        assert (t1.execution_info.result, t1.execution_info.requeue_count) == ("success", 0)
        wait_until(lambda: client.get_pool("periodic").current_dedicated_nodes == 0, timeout=30,
                   what="the pool back at zero")  # fmt: skip
    finally:
        client.begin_delete_pool("periodic", polling_interval=0.05).result()
        client.begin_delete_job("periodic-job", polling_interval=0.05).result()


def test_emulator_evaluate_autoscale_reports_as_batch_does(batch_session) -> None:
    from azure.batch import models
    from azure.core.exceptions import HttpResponseError

    client = batch_session.backend.account.client()
    client.create_pool(
        models.BatchPoolCreateOptions(
            id="evaluated", vm_size="standard_d2s_v3", enable_auto_scale=True,
            auto_scale_formula="$TargetDedicatedNodes = 0;",
        )
    )  # fmt: skip
    try:
        # Syntax: the request is refused (400), naming line and column.
        with pytest.raises(HttpResponseError) as refused:
            client.evaluate_pool_auto_scale(
                "evaluated",
                models.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$a = (1;"),
            )
        assert refused.value.status_code == 400
        assert refused.value.error.code == "AutoScalingFormulaSyntaxError"
        # Run time: the request succeeds and the run carries the error.
        run = client.evaluate_pool_auto_scale(
            "evaluated",
            models.BatchPoolEvaluateAutoScaleOptions(
                auto_scale_formula=(
                    "$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Day, 50));"
                )
            ),
        )
        assert run.error.code == "InsufficientSampleData"
        assert "wanted 50%" in run.error.error_values[0].value
        # Evaluating changes nothing.
        assert client.get_pool("evaluated").auto_scale_formula == "$TargetDedicatedNodes = 0;"
    finally:
        client.begin_delete_pool("evaluated", polling_interval=0.05).result()


def test_emulator_taskcompletion_lets_a_running_task_finish(batch_session) -> None:
    from azure.batch import models

    client = batch_session.backend.account.client()
    # Once the task runs, nothing is active: the formula asks for 0 nodes while the task runs.
    formula = (
        "$TargetDedicatedNodes = min(1, max(0, $ActiveTasks.GetSample(1)));\n"
        "$NodeDeallocationOption = taskcompletion;"
    )
    client.create_pool(
        models.BatchPoolCreateOptions(
            id="drain", vm_size="standard_d2s_v3", enable_auto_scale=True,
            auto_scale_formula=formula, auto_scale_evaluation_interval="PT5M",
        )
    )  # fmt: skip
    try:
        client.create_job(
            models.BatchJobCreateOptions(id="drain-job", pool_info={"poolId": "drain"})
        )
        client.create_task(
            "drain-job", models.BatchTaskCreateOptions(id="slow", command_line="sleep 2")
        )
        wait_until(lambda: client.get_task("drain-job", "slow").state == "running", timeout=30)

        def draining() -> bool:
            pool = client.get_pool("drain")
            return pool.target_dedicated_nodes == 0 and pool.current_dedicated_nodes == 1

        wait_until(draining, timeout=30, what="target 0 while the node still runs the task")
        assert client.get_pool("drain").allocation_state == "resizing"
        wait_until(lambda: client.get_task("drain-job", "slow").state == "completed", timeout=30)
        info = client.get_task("drain-job", "slow").execution_info
        assert (info.result, info.requeue_count, info.retry_count) == ("success", 0, 0)
        wait_until(lambda: client.get_pool("drain").current_dedicated_nodes == 0, timeout=30)
        assert client.get_pool("drain").allocation_state == "steady"
    finally:
        client.begin_delete_pool("drain", polling_interval=0.05).result()
        client.begin_delete_job("drain-job", polling_interval=0.05).result()


def test_emulator_refuses_bad_autoscale_settings_at_pool_creation(batch_session) -> None:
    from azure.batch import models
    from azure.core.exceptions import HttpResponseError

    client = batch_session.backend.account.client()
    with pytest.raises(HttpResponseError) as refused:
        client.create_pool(
            models.BatchPoolCreateOptions(
                id="tooquick", vm_size="standard_d2s_v3", enable_auto_scale=True,
                auto_scale_formula="$TargetDedicatedNodes = 0;",
                auto_scale_evaluation_interval="PT1M",
            )
        )  # fmt: skip
    assert refused.value.error.code == "InvalidPropertyValue"
    assert "tooquick" not in [p.id for p in client.list_pools()]
    with pytest.raises(HttpResponseError) as both:  # a target, even 0, with autoscale
        client.create_pool(
            models.BatchPoolCreateOptions(
                id="both", vm_size="standard_d2s_v3", enable_auto_scale=True,
                auto_scale_formula="$TargetDedicatedNodes = 0;", target_dedicated_nodes=0,
            )
        )  # fmt: skip
    assert both.value.error.code == "InvalidPropertyValue"


# -- azhpc.Pool with an autoscale policy ---------------------------------------------------------


def test_autoscaled_pool_runs_a_map_and_returns_to_zero_nodes(batch_session) -> None:
    client = batch_session.backend.account.client()
    with azhpc.Pool(
        "autoscaled", "Standard_D2s_v5", autoscale=FOLLOW_THEN_ZERO, task_slots_per_node=2,
        session=batch_session, timeout=60,
    ) as pool:  # fmt: skip
        assert pool.nodes() == {}  # nothing pending yet: the formula asks for no node
        job = pool.submit_map(abs, range(-200, 0), chunksize=1)
        assert job.progress.total == 200
        wait_until(lambda: len(pool.nodes()) == 2, timeout=60, what="the pool grown to 2 nodes")
        assert job.result(timeout=300) == list(range(200, 0, -1))
        wait_until(lambda: pool.nodes() == {}, timeout=60, what="the pool back at zero nodes")
        run = client.get_pool(pool.pool_id).auto_scale_run
        assert run.error is None and "$TargetDedicatedNodes=0" in run.results
    assert pool.pool_id not in [p.id for p in client.list_pools()]


def test_autoscaled_pool_that_never_grows_quotes_its_last_evaluation(batch_session) -> None:
    client = batch_session.backend.account.client()
    # A day of samples, 90 % of them: never there within the test (a day is 58 s here).
    formula = "$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Day, 90));"
    with (
        azhpc.Pool(
            "nevergrows", "Standard_D2s_v5", autoscale=formula, session=batch_session, timeout=2
        ) as pool,
        pytest.raises(PoolStartError) as never,
    ):
        pool.map(abs, [-1])
    message = str(never.value)
    assert "no usable node" in message and "InsufficientSampleData" in message
    assert "wanted 90%" in message
    # The job whose tasks were waiting was ended with the failure.
    jobs = [j for j in client.list_jobs() if j.pool_info.pool_id == "nevergrows"]
    assert jobs and all(j.state in ("terminating", "completed") for j in jobs)


def test_adopted_autoscaled_pool_checks_the_environment_of_its_first_node(batch_session) -> None:
    from azure.batch import models

    from azhpc.backends.batch.pool_body import start_task_command_line

    client = batch_session.backend.account.client()
    record = '{"python": "3.8.10", "cloudpickle": "2.0.0", "azhpc": "0.0.1"}'
    script = (
        'mkdir -p "$AZ_BATCH_NODE_SHARED_DIR/azhpc" && '
        f"echo '{record}' > \"$AZ_BATCH_NODE_SHARED_DIR/azhpc/environment.json\""
    )
    client.create_pool(
        models.BatchPoolCreateOptions(
            {
                "id": "old-auto",
                "vmSize": "Standard_D2s_v5",
                "enableAutoScale": True,
                "autoScaleFormula": (
                    "$TargetDedicatedNodes = min(1, max(0, $PendingTasks.GetSample(1)));"
                ),
                "autoScaleEvaluationInterval": "PT5M",
                "startTask": {"commandLine": start_task_command_line(script)},
            }
        )
    )
    try:
        with azhpc.Pool("old-auto", session=batch_session, timeout=30) as pool:
            assert pool.nodes() == {}  # adopted without waiting for a node
            with pytest.raises(EnvironmentMismatchError, match=r"Python 3\.8 on the nodes"):
                pool.map(abs, [-1, -2], chunksize=1)
        jobs = [j for j in client.list_jobs() if j.pool_info.pool_id == "old-auto"]
        assert jobs and all(j.state in ("terminating", "completed") for j in jobs)
    finally:
        client.begin_delete_pool("old-auto", polling_interval=0.05).result()
