"""Batch autoscale formulas at run time: the values, the functions, and the samples a pool keeps.

The rules come from learn.microsoft.com, "Create a formula to automatically scale compute nodes
in a Batch pool" (``articles/batch/batch-automatic-scaling.md``), called *the formula page*
below (the language itself, and its syntax errors, are ``formula.py``):

- Types: double, doubleVec, string, timestamp, timeinterval (``TimeInterval_*``), with the
  page's operator table; a ternary ``c ? a : b`` is true when ``c`` is nonzero, and only the
  chosen branch is evaluated (the page's "use GetSamplePercent to check first, then perform an
  alternate action ... without halting the evaluation" needs that).
- Functions ``avg len lg ln log max min norm percentile rand range std stop sum time val``;
  a doubleVecList argument (doubles and doubleVecs, comma separated) is flattened first.
- Sampled service variables (``$PendingTasks`` ...) are objects with ``GetSample``,
  ``GetSamplePercent`` (a *percent*, 0 to 100), ``GetSamplePeriod``, ``Count`` and
  ``HistoryBeginTime``. "Samples are recorded every 30 seconds", and "it takes approximately
  one minute for samples to propagate": a sample is readable one minute after it was taken.
  ``GetSample(interval, percent)`` fails when fewer than ``percent`` of the samples exist.

A formula that fails while running is not an HTTP error: the run's ``error`` says why, as the
REST reference of "Evaluate an automatic scaling formula" shows (``InsufficientSampleData``,
"Autoscale evaluation failed due to insufficient sample data", ``values: [{name: Message,
value: "Line 1, Col 37: ..."}]``); the pool's targets then stay as they were. The code of other
run-time failures is not documented; the emulator says ``FormulaEvaluationError``.

Not emulated: resource metrics (``$CPUPercent`` and the like have no samples).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import email.utils
import math
import random
import re
import statistics
from typing import Any

from azhpc.emulator.batch.formula import (
    DEALLOCATION_OPTIONS,
    INTERVALS,
    METRICS,
    TARGETS,
    Expr,
    Formula,
    parse,
)
from azhpc.emulator.batch.model import (
    ApiError,
    JobState,
    NodeState,
    Pool,
    Store,
    TaskState,
    rfc3339,
    utcnow,
)

__all__ = [
    "AutoscaleRun",
    "SampleHistory",
    "evaluate",
    "evaluation_interval",
    "sample_pool",
]

#: The formula page: "These samples are recorded every 30 seconds by the Batch service".
SAMPLE_SECONDS = 30.0
#: The formula page: "It takes approximately one minute for samples to propagate".
SAMPLE_DELAY_SECONDS = 60.0
#: The formula page, "Automatic scaling interval": 15 minutes by default, "The minimum interval
#: is five minutes, and the maximum is 168 hours ... the Batch service returns a Bad Request
#: (400) error"; BatchService.json (2025-06-01), autoScaleEvaluationInterval: "the Batch service
#: rejects the request with an invalid property value error" (``InvalidPropertyValue``).
DEFAULT_INTERVAL = dt.timedelta(minutes=15)
MIN_INTERVAL = dt.timedelta(minutes=5)
MAX_INTERVAL = dt.timedelta(hours=168)


def evaluation_interval(value: Any) -> dt.timedelta:
    """``autoScaleEvaluationInterval`` (ISO 8601, e.g. ``PT5M``) checked against Batch's range."""
    if value in (None, ""):
        return DEFAULT_INTERVAL
    match = re.fullmatch(
        r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", str(value)
    )
    if match is None or not any(match.groups()):
        raise ApiError(
            400, "InvalidPropertyValue", f"autoScaleEvaluationInterval {value!r} is not a duration"
        )
    days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
    interval = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise ApiError(
            400,
            "InvalidPropertyValue",
            f"autoScaleEvaluationInterval must be between 5 minutes and 168 hours, got {value!r}",
        )
    return interval


# -- values -------------------------------------------------------------------------------------


class Vec(tuple[float, ...]):
    """A doubleVec."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """A timeinterval, in (the service's) seconds."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class Metric:
    """A sampled service variable such as ``$PendingTasks``."""

    name: str


class EvaluationError(Exception):
    """A formula failed while running: becomes the run's ``error``."""

    def __init__(self, node: Any, message: str, code: str = "FormulaEvaluationError") -> None:
        super().__init__(message)
        self.code = code
        self.detail = f"Line {node.line}, Col {node.col}: {message}"


class _Stop(Exception):
    """``stop()``: the remaining statements are not evaluated."""


def _type(value: Any) -> str:
    if isinstance(value, Vec):
        return "doubleVec"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Interval):
        return "timeinterval"
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, Metric):
        return f"the sampled variable {value.name}"
    return "string"


def _render(value: Any) -> str:
    if isinstance(value, Vec):
        return "[" + ",".join(_render(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.15g}"
    if isinstance(value, Interval):
        return str(dt.timedelta(seconds=value.seconds))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value)


# -- samples ------------------------------------------------------------------------------------


class SampleHistory:
    """The samples Batch keeps for one pool: (time, metric values), in the service's seconds.

    ``now`` is the service clock (seconds); the emulator may run it faster than real time.
    """

    def __init__(self, *, limit: int = 4096) -> None:
        self.samples: collections.deque[tuple[float, dict[str, float]]] = collections.deque(
            maxlen=limit
        )

    def record(self, now: float, values: dict[str, float]) -> None:
        """Add the sample taken at ``now``."""
        self.samples.append((now, values))

    def readable(self, name: str, now: float) -> list[tuple[float, float]]:
        """The samples of ``name`` a formula can read at ``now`` (a minute old or older)."""
        return [
            (t, values[name])
            for t, values in self.samples
            if t <= now - SAMPLE_DELAY_SECONDS and name in values
        ]


def sample_pool(store: Store, pool: Pool) -> dict[str, float]:
    """This moment's values of the task and node metrics of ``pool`` (caller holds the lock)."""
    active = running = succeeded = failed = 0
    for job in store.jobs.values():
        if job.state != JobState.ACTIVE or job.pool_id != pool.id:
            continue
        for task in job.tasks.values():
            if task.state == TaskState.ACTIVE:
                # The formula page: "For a multi-instance task, $ActiveTasks will include the
                # number of instances set on the task."
                active += task.instances
            elif task.state in (TaskState.RUNNING, TaskState.PREPARING):
                running += 1
            elif task.state == TaskState.COMPLETED:
                result = task.execution_info.get("result")
                succeeded += result == "success"
                failed += result == "failure"
    return {
        "$ActiveTasks": float(active),
        "$RunningTasks": float(running),
        "$PendingTasks": float(active + running),
        "$SucceededTasks": float(succeeded),
        "$FailedTasks": float(failed),
        "$PreemptedNodeCount": float(
            sum(1 for n in pool.nodes.values() if n.state == NodeState.PREEMPTED)
        ),
        "$SampleNodeCount": float(len(pool.nodes)),
    }


# -- evaluation ---------------------------------------------------------------------------------


@dataclasses.dataclass
class AutoscaleRun:
    """One evaluation: the targets it set (``None`` when it failed) and the ``autoScaleRun``."""

    dedicated: int | None
    low_priority: int | None
    deallocation: str
    body: dict[str, Any]


class _Evaluator:
    def __init__(
        self, store: Store, pool: Pool, history: SampleHistory | None, now: float, scale: float
    ) -> None:
        self.history = history or SampleHistory()
        self.now = now
        self.scale = scale  # service seconds per real second (time() and timestamps)
        dedicated = sum(1 for n in pool.nodes.values() if n.is_dedicated)
        self.names: dict[str, Any] = {
            "$CurrentDedicatedNodes": float(dedicated),
            "$CurrentLowPriorityNodes": float(len(pool.nodes) - dedicated),
            "$TargetDedicatedNodes": float(pool.target_dedicated),
            "$TargetLowPriorityNodes": float(pool.target_low_priority),
            "$NodeDeallocationOption": "requeue",
        }
        self.set: dict[str, Any] = {}

    def run(self, formula: Formula) -> None:
        for statement in formula.statements:
            name = statement.name
            try:
                value = self.eval(statement.expr)
            except _Stop:
                return
            if isinstance(value, Metric):
                raise EvaluationError(statement, f"{value.name} is sampled: read it with GetSample")
            if name in TARGETS and not isinstance(value, float):
                raise EvaluationError(statement, f"{name} must be a double, got {_type(value)}")
            if name == "$NodeDeallocationOption" and value not in DEALLOCATION_OPTIONS:
                raise EvaluationError(
                    statement,
                    f"$NodeDeallocationOption must be one of {', '.join(DEALLOCATION_OPTIONS)}",
                )
            self.names[name] = value
            self.set[name] = value

    def eval(self, node: Expr) -> Any:
        if node.kind in ("number", "string"):
            return node.args[0]
        if node.kind == "name":
            return self.name(node)
        if node.kind == "ternary":
            condition = self.eval(node.args[0])
            if not isinstance(condition, float):
                raise EvaluationError(node, f"a condition must be a double, got {_type(condition)}")
            return self.eval(node.args[1] if condition != 0 else node.args[2])
        if node.kind == "unary":
            return self.unary(node, self.eval(node.args[0]))
        if node.kind == "binary":
            return self.binary(node, self.eval(node.args[0]), self.eval(node.args[1]))
        if node.kind == "call":
            return self.call(node)
        if node.kind == "method":
            return self.method(node)
        target = self.eval(node.args[0])  # member
        if not isinstance(target, dt.datetime):
            raise EvaluationError(node, f".{node.text} needs a timestamp, got {_type(target)}")
        if node.text == "weekday":
            return float(target.isoweekday())
        return float(getattr(target, node.text))

    def name(self, node: Expr) -> Any:
        text = node.text
        if text in self.names:
            return self.names[text]
        if text in TARGETS:
            return self.names[TARGETS[text]]
        if text in METRICS:
            return Metric(text)
        if text in INTERVALS:
            return Interval(INTERVALS[text])
        if text in DEALLOCATION_OPTIONS:
            return text
        raise EvaluationError(node, f"undefined variable {text!r}")

    def unary(self, node: Expr, value: Any) -> Any:
        if isinstance(value, float):
            return -value if node.text == "-" else float(value == 0)
        if isinstance(value, Interval) and node.text == "-":
            return Interval(-value.seconds)
        raise EvaluationError(node, f"operator {node.text} is not defined for {_type(value)}")

    def binary(self, node: Expr, a: Any, b: Any) -> Any:
        op = node.text
        if op in ("&&", "||") and isinstance(a, float) and isinstance(b, float):
            return float((a != 0 and b != 0) if op == "&&" else (a != 0 or b != 0))
        if op in ("<", "<=", ">", ">=", "==", "!="):
            comparable = (isinstance(a, float) and isinstance(b, float)) or (
                type(a) is type(b) and isinstance(a, (str, Interval, dt.datetime))
            )
            if comparable:
                x, y = (a.seconds, b.seconds) if isinstance(a, Interval) else (a, b)
                return float(_compare(op, x, y))
        if isinstance(a, float) and isinstance(b, float) and op in "+-*/":
            return self.arithmetic(node, op, a, b)
        if isinstance(a, Vec) and isinstance(b, (float, Vec)) and op in "+-*/":
            other = b if isinstance(b, Vec) else Vec([b] * len(a))
            if len(other) != len(a):
                raise EvaluationError(node, "doubleVecs of different lengths")
            return Vec(self.arithmetic(node, op, x, y) for x, y in zip(a, other, strict=True))
        if isinstance(a, Interval) and isinstance(b, float) and op in "*/":
            return Interval(self.arithmetic(node, op, a.seconds, b))
        if isinstance(a, float) and isinstance(b, Interval) and op == "*":
            return Interval(a * b.seconds)
        if isinstance(a, Interval) and isinstance(b, Interval) and op in "+-":
            return Interval(a.seconds + b.seconds if op == "+" else a.seconds - b.seconds)
        if op == "+" and isinstance(a, Interval) and isinstance(b, dt.datetime):
            a, b = b, a
        if op == "+" and isinstance(a, dt.datetime) and isinstance(b, Interval):
            return a + dt.timedelta(seconds=b.seconds)
        if op == "-" and isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
            return Interval((a - b).total_seconds())
        raise EvaluationError(node, f"operator {op} is not defined for {_type(a)} and {_type(b)}")

    @staticmethod
    def arithmetic(node: Expr, op: str, a: float, b: float) -> float:
        if op == "/" and b == 0:
            raise EvaluationError(node, "division by zero")
        return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b

    def call(self, node: Expr) -> Any:
        name = node.text
        args = [self.eval(arg) for arg in node.args]
        if name == "stop":
            raise _Stop
        if name == "rand":
            return random.random()
        if name == "time":
            if not args:
                return utcnow()
            if len(args) == 1 and isinstance(args[0], str):
                return _timestamp(node, args[0])
            raise EvaluationError(node, "time() takes nothing or a date-time string")
        if name in ("lg", "ln", "log"):
            base = {"lg": 2.0, "ln": math.e, "log": 10.0}[name]
            if len(args) == 1 and isinstance(args[0], float):
                return _log(node, args[0], base)
            return Vec(_log(node, v, base) for v in self.flatten(node, args))
        if name in ("percentile", "val"):
            if len(args) != 2 or not isinstance(args[0], Vec) or not isinstance(args[1], float):
                raise EvaluationError(node, f"{name}(doubleVec, double) expected")
            return self.pick(node, name, args[0], args[1])
        values = self.flatten(node, args)
        if name == "len":
            return float(len(values))
        if name == "sum":
            return float(sum(values))
        if name == "norm":
            return math.sqrt(sum(v * v for v in values))
        if not values or (name == "std" and len(values) < 2):
            raise EvaluationError(node, f"{name}() of an empty list of values")
        if name == "avg":
            return statistics.fmean(values)
        if name == "max":
            return max(values)
        if name == "min":
            return min(values)
        if name == "range":
            return max(values) - min(values)
        return statistics.stdev(values)  # std

    @staticmethod
    def flatten(node: Expr, args: list[Any]) -> list[float]:
        values: list[float] = []
        for arg in args:
            if isinstance(arg, Vec):
                values.extend(arg)
            elif isinstance(arg, float):
                values.append(arg)
            else:
                raise EvaluationError(
                    node, f"{node.text}() takes doubles and doubleVecs, got {_type(arg)}"
                )
        return values

    @staticmethod
    def pick(node: Expr, name: str, vec: Vec, number: float) -> float:
        if name == "val":
            if not 0 <= number < len(vec) or number != int(number):
                raise EvaluationError(
                    node, f"val(): index {number:g} outside a doubleVec of {len(vec)}"
                )
            return vec[int(number)]
        if not vec or not 0 <= number <= 100:
            raise EvaluationError(node, "percentile() needs values and a percent from 0 to 100")
        ordered = sorted(vec)
        return ordered[min(len(ordered) - 1, int(len(ordered) * number / 100))]

    def method(self, node: Expr) -> Any:
        target = self.eval(node.args[0])
        args = [self.eval(arg) for arg in node.args[1:]]
        if not isinstance(target, Metric):
            raise EvaluationError(
                node, f"{node.text}() is a method of sampled variables, not of {_type(target)}"
            )
        samples = self.history.readable(target.name, self.now)
        if node.text == "GetSamplePeriod":
            return Interval(SAMPLE_SECONDS)
        if node.text == "Count":
            return float(len(samples))
        if node.text == "HistoryBeginTime":
            if not samples:
                raise EvaluationError(
                    node, f"{target.name} has no samples yet", "InsufficientSampleData"
                )
            return utcnow() - dt.timedelta(seconds=(self.now - samples[0][0]) / self.scale)
        if node.text == "GetSample" and len(args) == 1 and isinstance(args[0], float):
            count = int(args[0])
            return Vec(v for _, v in samples[-count:]) if count > 0 else Vec()
        times = [a for a in args if isinstance(a, (Interval, dt.datetime))]
        rest = args[len(times) :]
        if not 1 <= len(times) <= 2 or len(rest) > (1 if node.text == "GetSample" else 0):
            raise EvaluationError(node, f"{node.text}(): unexpected arguments")
        if any(not isinstance(r, float) for r in rest):
            raise EvaluationError(node, f"{node.text}(): the sample percent must be a double")
        start = self.look_back(times[0])
        end = self.look_back(times[1]) if len(times) == 2 else 0.0
        window = [(t, v) for t, v in samples if self.now - start < t <= self.now - end]
        possible = max(1.0, (start - end) / SAMPLE_SECONDS)
        percent = min(100.0, 100.0 * len(window) / possible)
        if node.text == "GetSamplePercent":
            return percent
        if rest and percent < rest[0]:
            raise EvaluationError(
                node,
                f"Insufficient data from data set: {target.name} wanted {rest[0]:g}%, received "
                f"{percent:.0f}%",
                "InsufficientSampleData",
            )
        return Vec(v for _, v in window)

    def look_back(self, value: Interval | dt.datetime) -> float:
        if isinstance(value, Interval):
            return value.seconds
        return (utcnow() - value).total_seconds() * self.scale


def _compare(op: str, x: Any, y: Any) -> bool:
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    if op == ">=":
        return bool(x >= y)
    return (x == y) if op == "==" else (x != y)


def _log(node: Expr, value: float, base: float) -> float:
    if value <= 0:
        raise EvaluationError(node, f"logarithm of {value:g}")
    return math.log(value, base)


def _timestamp(node: Expr, text: str) -> dt.datetime:
    """W3C-DTF or RFC 1123 (the formula page's ``time(string)``)."""
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text).astimezone(dt.UTC)
    except (TypeError, ValueError):
        raise EvaluationError(node, f"time(): {text!r} is neither W3C-DTF nor RFC 1123") from None


def _target(value: Any) -> int:
    """A target as a node count: fractions are dropped (the formula page's "+ 3) / 4" idiom for
    rounding up relies on it), and below zero is zero."""
    if not math.isfinite(value):
        return 0
    return max(0, int(value))


def evaluate(
    store: Store,
    pool: Pool,
    formula: Formula | str,
    *,
    history: SampleHistory | None = None,
    now: float = 0.0,
    scale: float = 1.0,
) -> AutoscaleRun:
    """Run ``formula`` for ``pool`` over its sample ``history`` at service time ``now``.

    Parameters
    ----------
    scale
        Service seconds per real second (the emulator's clock may run fast).

    Returns
    -------
    AutoscaleRun
        The targets (``None`` when the run failed: the pool keeps its targets) and the
        ``autoScaleRun`` REST shape (``timestamp``, ``results``, and ``error`` on failure).

    Raises
    ------
    ApiError
        400 ``AutoScalingFormulaSyntaxError`` / ``AutoScalingFormulaTooLong`` (see :func:`parse`).
    """
    parsed = parse(formula) if isinstance(formula, str) else formula
    evaluator = _Evaluator(store, pool, history, now, scale)
    error: EvaluationError | None = None
    try:
        evaluator.run(parsed)
    except EvaluationError as e:
        error = e
    names = evaluator.names
    for alias, full in TARGETS.items():  # "the fully named variable will take precedence"
        if alias != full and alias in evaluator.set and full not in evaluator.set:
            names[full] = evaluator.set[alias]
    for full in ("$TargetDedicatedNodes", "$TargetLowPriorityNodes"):  # as node counts
        if isinstance(names[full], float):
            names[full] = float(_target(names[full]))
    shown = ["$TargetDedicatedNodes", "$TargetLowPriorityNodes", "$NodeDeallocationOption"]
    users = sorted(n for n in evaluator.set if n not in TARGETS and n not in shown)
    results = ";".join(f"{n}={_render(names[n])}" for n in shown + users)
    body: dict[str, Any] = {"timestamp": rfc3339(utcnow()), "results": results}
    if error is not None:
        message = (
            "Autoscale evaluation failed due to insufficient sample data"
            if error.code == "InsufficientSampleData"
            else "Autoscale evaluation failed"
        )
        body["error"] = {
            "code": error.code,
            "message": message,
            "values": [{"name": "Message", "value": error.detail}],
        }
        return AutoscaleRun(None, None, str(names["$NodeDeallocationOption"]), body)
    return AutoscaleRun(
        _target(names["$TargetDedicatedNodes"]),
        _target(names["$TargetLowPriorityNodes"]),
        str(names["$NodeDeallocationOption"]),
        body,
    )
