"""Autoscale helpers: the Batch formula text."""

from __future__ import annotations

import datetime

import pytest

from azhpc.pools import Autoscale, PoolSpecError


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
