"""Autoscale helpers: the Batch formula text, and what Batch (the emulator's formula language,
which follows Batch's documentation) makes of it."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from azhpc.emulator.batch.autoscale import SampleHistory, evaluate
from azhpc.emulator.batch.formula import parse
from azhpc.emulator.batch.model import ApiError, Pool, Store
from azhpc.pools import Autoscale, PoolSpecError

FOLLOW_THEN_ZERO = Autoscale.follow_pending_tasks(max_nodes=2, slots_per_node=2) + (
    Autoscale.scale_to_zero_when_idle(idle_minutes=5)
)


def statements(formula: str) -> list[str]:
    return [line for line in formula.splitlines() if not line.startswith("//")]


def test_follow_pending_tasks_formula_text() -> None:
    formula = Autoscale.follow_pending_tasks(max_nodes=10, slots_per_node=16).formula
    assert statements(formula) == [
        "$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);",
        "$tasks = $samples < 70 ? max(0, $PendingTasks.GetSample(1)) : "
        "max($PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 5)));",
        "$wanted = min(10, ($tasks + 15) / 16);",
        "$TargetDedicatedNodes = $wanted;",
        "$TargetLowPriorityNodes = 0;",
        "$NodeDeallocationOption = taskcompletion;",
    ]


def test_every_statement_is_documented_and_terminated() -> None:
    policy = Autoscale.follow_pending_tasks(max_nodes=3) + Autoscale.scale_to_zero_when_idle()
    lines = policy.formula.splitlines()
    assert lines[0].startswith("// azhpc autoscale")
    for index, line in enumerate(lines):
        if not line.startswith("//"):  # a comment at most two lines above every statement
            assert any(prev.startswith("//") for prev in lines[max(0, index - 2) : index]), line
    assert all(line.endswith(";") for line in statements(policy.formula))


def test_follow_pending_tasks_spot_sets_low_priority_target() -> None:
    policy = Autoscale.follow_pending_tasks(max_nodes=4, spot=True, interval_minutes=10)
    body = statements(policy.formula)
    assert "$TargetLowPriorityNodes = $wanted;" in body
    assert "$TargetDedicatedNodes = 0;" in body
    assert "TimeInterval_Minute * 10" in policy.formula
    assert policy.evaluation_interval == datetime.timedelta(minutes=10)


def test_scale_to_zero_when_idle_formula_text() -> None:
    policy = Autoscale.scale_to_zero_when_idle(idle_minutes=20, nodes=3)
    assert statements(policy.formula) == [
        "$wanted = 3;",
        "$idleSamples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 20);",
        "$busy = $idleSamples < 70 ? 1 : max($PendingTasks.GetSample(TimeInterval_Minute * 20));",
        "$wanted = $busy > 0 ? $wanted : 0;",
        "$TargetDedicatedNodes = $wanted;",
        "$TargetLowPriorityNodes = 0;",
        "$NodeDeallocationOption = taskcompletion;",
    ]


def test_combined_policy_follows_tasks_then_scales_to_zero() -> None:
    policy = Autoscale.follow_pending_tasks(max_nodes=10, slots_per_node=4) + (
        Autoscale.scale_to_zero_when_idle(idle_minutes=30)
    )
    assert (policy.max_nodes, policy.slots_per_node, policy.idle_minutes) == (10, 4, 30)
    body = statements(policy.formula)
    assert body.index("$wanted = min(10, ($tasks + 3) / 4);") < body.index(
        "$wanted = $busy > 0 ? $wanted : 0;"
    )
    assert str(policy) == policy.formula


def test_autoscale_refuses_bad_arguments() -> None:
    with pytest.raises(PoolSpecError, match="between 5"):
        Autoscale.follow_pending_tasks(max_nodes=2, interval_minutes=1)
    with pytest.raises(PoolSpecError, match="max_nodes"):
        Autoscale.follow_pending_tasks(max_nodes=0)
    with pytest.raises(PoolSpecError, match="same spot"):
        Autoscale.follow_pending_tasks(max_nodes=2) + Autoscale.scale_to_zero_when_idle(spot=True)


# -- the formulas as Batch runs them (the emulator) -----------------------------------------


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
