"""Autoscaled pools: the emulator evaluates Batch's formula language periodically on sampled task
counts, and an ``azhpc.Pool`` with an autoscale policy starts, runs a map and goes back to zero
nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc.emulator.batch.autoscale import SampleHistory, evaluate
from azhpc.emulator.batch.formula import parse
from azhpc.emulator.batch.model import ApiError, Pool, Store
from azhpc.errors import EnvironmentMismatchError, PoolStartError
from azhpc.pools import Autoscale
from tests.conftest import batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)

FOLLOW_THEN_ZERO = Autoscale.follow_pending_tasks(max_nodes=2, slots_per_node=2) + (
    Autoscale.scale_to_zero_when_idle(idle_minutes=5)
)


def _run(formula: str, samples: dict[float, float], now: float) -> dict[str, Any]:
    """Evaluate ``formula`` on ``$PendingTasks`` samples {service second: value} at ``now``."""
    history = SampleHistory()
    for t, value in sorted(samples.items()):
        history.record(t, {"$PendingTasks": value, "$ActiveTasks": value})
    run = evaluate(Store(Path("/nonexistent")), Pool(id="p", spec={}), formula, history=history,
                   now=now)  # fmt: skip
    return run.body


def _results(body: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in body["results"].split(";"))


# -- the formula language ------------------------------------------------------------------------


def test_emulator_accepts_azhpc_formulas_with_comments() -> None:
    # Every formula azhpc generates has '//' comment lines, some with ';' inside them.
    for policy in (FOLLOW_THEN_ZERO, Autoscale.follow_pending_tasks(max_nodes=3, spot=True)):
        assert len(parse(policy.formula).statements) >= 5


def test_emulator_formula_syntax_errors_are_batch_errors() -> None:
    with pytest.raises(ApiError) as bad:
        parse("$TargetDedicatedNodes = 2 +;\n")
    assert (bad.value.status, bad.value.code) == (400, "AutoScalingFormulaSyntaxError")
    assert "Line 1, Col 28" in bad.value.message
    for formula in ("$TargetDedicatedNodes = nosuch(1);", "$PendingTasks = 1;", "$a = $b;"):
        with pytest.raises(ApiError, match="syntax error"):
            parse(formula)
    with pytest.raises(ApiError) as long:
        parse("$a = 1;" * 2000)
    assert long.value.code == "AutoScalingFormulaTooLong"


def test_emulator_get_sample_percent_is_a_percent() -> None:
    every_30s = {float(t): 3.0 for t in range(0, 600, 30)}  # 20 samples, the last at 570 s
    body = _run("$p = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);", every_30s, 600)
    # 10 possible samples in the last 5 minutes; the last minute's have not propagated yet.
    assert _results(body)["$p"] == "80"


def test_emulator_get_sample_with_a_percent_fails_the_run_as_batch_does() -> None:
    body = _run(
        "$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Minute * 10, 95));",
        {0.0: 1.0, 30.0: 1.0},
        120,
    )
    assert body["error"]["code"] == "InsufficientSampleData"
    assert body["error"]["values"][0]["value"].startswith("Line 1, Col ")
    assert "wanted 95%" in body["error"]["values"][0]["value"]


def test_emulator_ternary_evaluates_only_the_chosen_branch() -> None:
    formula = (
        "$n = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 10) < 70 ? 1 : "
        "avg($PendingTasks.GetSample(TimeInterval_Minute * 10, 70));\n"
        "$TargetDedicatedNodes = $n; $NodeDeallocationOption = taskcompletion;"
    )
    body = _run(formula, {}, 0)
    assert "error" not in body
    assert _results(body)["$TargetDedicatedNodes"] == "1"
    assert _results(body)["$NodeDeallocationOption"] == "taskcompletion"


def test_emulator_follow_then_zero_formula_semantics() -> None:
    formula = FOLLOW_THEN_ZERO.formula
    busy = {float(t): 7.0 for t in range(0, 600, 30)}
    assert _results(_run(formula, busy, 600))["$TargetDedicatedNodes"] == "2"
    # Five quiet minutes after the work: the follow policy wants none, the idle window agrees.
    done = busy | {float(t): 0.0 for t in range(600, 1200, 30)}
    assert _results(_run(formula, done, 1200))["$TargetDedicatedNodes"] == "0"
    # No samples yet (a new pool): no node, and no error.
    first = _run(formula, {}, 0)
    assert "error" not in first and _results(first)["$TargetDedicatedNodes"] == "0"


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
