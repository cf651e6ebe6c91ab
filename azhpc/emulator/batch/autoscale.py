"""A tiny subset of Batch autoscale formulas, evaluated when autoscale is enabled or evaluated.

Supported: statements ``$Var = expression;`` where the expression uses integer/float literals,
``+ - * /``, parentheses, ``min(...)``, ``max(...)``, ``avg(...)``, comparison and
``cond ? a : b``, earlier user variables, and these service variables, as current numbers:
``$PendingTasks`` (active + running tasks of the pool's active jobs), ``$ActiveTasks``,
``$RunningTasks``, ``$CurrentDedicatedNodes``, ``$CurrentLowPriorityNodes``. Sample methods
(``.GetSample(...)``, ``.GetSamplePercent(...)``) return that current number. The results
are ``$TargetDedicatedNodes``, ``$TargetLowPriorityNodes`` and ``$NodeDeallocationOption``.
Anything else is a 400 ``InvalidAutoScaleFormula``. There is no periodic re-evaluation: the
formula runs when the pool is created, autoscale is enabled, or ``evaluateautoscale`` is called.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from azhpc.emulator.batch.model import ApiError, JobState, Pool, Store, TaskState, rfc3339, utcnow

__all__ = ["evaluate"]

_SAMPLE = re.compile(r"\.(GetSample|GetSamplePercent|GetSamplePeriod)\([^()]*\)")
_TERNARY = re.compile(r"^(?P<cond>[^?]+)\?(?P<a>[^:]+):(?P<b>.+)$")
_FUNCS = {"min": min, "max": max, "avg": lambda *a: sum(a) / len(a)}


def _bad(message: str) -> ApiError:
    return ApiError(400, "InvalidAutoScaleFormula", f"The autoscale formula is invalid: {message}")


def _eval(node: ast.AST, names: dict[str, float]) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body, names)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise _bad(f"unknown variable {node.id.replace('V_', '$', 1)}")
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, names)
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, names), _eval(node.right, names)
        ops: dict[type, Any] = {
            ast.Add: lambda: a + b,
            ast.Sub: lambda: a - b,
            ast.Mult: lambda: a * b,
            ast.Div: lambda: a / b if b else 0.0,
        }
        if type(node.op) in ops:
            return float(ops[type(node.op)]())
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        a, b = _eval(node.left, names), _eval(node.comparators[0], names)
        cmp: dict[type, Any] = {
            ast.Lt: a < b, ast.LtE: a <= b, ast.Gt: a > b, ast.GtE: a >= b,
            ast.Eq: a == b, ast.NotEq: a != b,
        }  # fmt: skip
        if type(node.ops[0]) in cmp:
            return float(cmp[type(node.ops[0])])
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and node.args
    ):
        return float(_FUNCS[node.func.id](*(_eval(a, names) for a in node.args)))
    raise _bad(f"unsupported expression {ast.dump(node)[:60]}")


def _expression(text: str, names: dict[str, float]) -> float:
    text = _SAMPLE.sub("", text).strip()
    ternary = _TERNARY.match(text)
    if ternary:
        cond = _expression(ternary["cond"], names)
        return _expression(ternary["a"] if cond else ternary["b"], names)
    python = re.sub(r"\$(\w+)", r"V_\1", text)
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError as e:
        raise _bad(f"cannot parse {text!r}") from e
    return _eval(tree, names)


def _service_variables(store: Store, pool: Pool) -> dict[str, float]:
    active = running = 0
    for job in store.jobs.values():
        if job.state != JobState.ACTIVE or job.pool_id != pool.id:
            continue
        for task in job.tasks.values():
            active += task.state == TaskState.ACTIVE
            running += task.state == TaskState.RUNNING
    dedicated = sum(1 for n in pool.nodes.values() if n.is_dedicated)
    return {
        "V_PendingTasks": float(active + running),
        "V_ActiveTasks": float(active),
        "V_RunningTasks": float(running),
        "V_CurrentDedicatedNodes": float(dedicated),
        "V_CurrentLowPriorityNodes": float(len(pool.nodes) - dedicated),
        "V_TargetDedicatedNodes": float(pool.target_dedicated),
        "V_TargetLowPriorityNodes": float(pool.target_low_priority),
    }


def evaluate(store: Store, pool: Pool, formula: str) -> tuple[int, int, dict[str, Any]]:
    """Run ``formula`` for ``pool``: (target dedicated, target low-priority, ``autoScaleRun``).

    Raises
    ------
    ApiError
        400 ``InvalidAutoScaleFormula`` for formulas outside the supported subset.
    """
    names = _service_variables(store, pool)
    results: list[str] = []
    for statement in formula.replace("\n", ";").split(";"):
        statement = statement.strip()
        if not statement or statement.startswith("//"):
            continue
        name, eq, expr = statement.partition("=")
        name = name.strip()
        if not eq or not re.fullmatch(r"\$?\w+", name):
            raise _bad(f"expected '$Name = expression', got {statement!r}")
        if name == "$NodeDeallocationOption":
            results.append(f"$NodeDeallocationOption={expr.strip()}")
            continue
        value = _expression(expr, names)
        names["V_" + name.lstrip("$")] = value
        results.append(f"{name}={value:g}")
    dedicated = max(0, int(names["V_TargetDedicatedNodes"]))
    low_priority = max(0, int(names["V_TargetLowPriorityNodes"]))
    run = {"timestamp": rfc3339(utcnow()), "results": ";".join(results)}
    return dedicated, low_priority, run
