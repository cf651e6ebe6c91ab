"""Autoscale formula helpers: Batch formula text for "follow pending tasks" and "scale to zero
when idle", alone or combined.

A Batch autoscale formula is a string of ``;``-terminated statements, evaluated by the service
every ``autoScaleEvaluationInterval`` (5 minutes to 168 hours). It reads service-defined
variables (``$PendingTasks`` = active + running tasks, sampled over time) and sets
``$TargetDedicatedNodes`` / ``$TargetLowPriorityNodes`` and ``$NodeDeallocationOption``.
Reference: https://learn.microsoft.com/azure/batch/batch-automatic-scaling . The formulas
below follow that page's "pending tasks" example; every statement has a ``//`` comment line
above it (the formula language allows comments).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from azhpc.errors import PoolSpecError

__all__ = [
    "IDLE_SHUTDOWN_MINUTES",
    "MIN_EVALUATION_MINUTES",
    "Autoscale",
    "idle_shutdown_formula",
]

#: Batch refuses evaluation intervals under 5 minutes or over 168 hours.
MIN_EVALUATION_MINUTES = 5
MAX_EVALUATION_MINUTES = 168 * 60


@dataclass(frozen=True)
class Autoscale:
    """An autoscale policy that renders to Batch formula text (:attr:`formula`).

    Build one with :meth:`follow_pending_tasks` or :meth:`scale_to_zero_when_idle`, and
    combine them with ``+`` (or :meth:`combine`)::

        Autoscale.follow_pending_tasks(max_nodes=10, slots_per_node=16) + \\
            Autoscale.scale_to_zero_when_idle(idle_minutes=15)

    Attributes
    ----------
    max_nodes
        The most nodes the formula ever asks for.
    slots_per_node
        Task slots per node (one node per ``slots_per_node`` pending tasks); ``None`` when the
        policy does not follow pending tasks.
    spot
        Scale spot (low-priority) nodes instead of dedicated ones.
    interval_minutes
        How often Batch evaluates the formula, and the sampling window for pending tasks.
    idle_minutes
        Scale to zero after this many minutes without any pending or running task; ``None``
        for never.
    """

    max_nodes: int
    slots_per_node: int | None = None
    spot: bool = False
    interval_minutes: int = MIN_EVALUATION_MINUTES
    idle_minutes: int | None = None

    def __post_init__(self) -> None:

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise PoolSpecError("autoscale", message)

        need(
            _is_int(self.max_nodes) and self.max_nodes >= 1,
            f"max_nodes must be a whole number >= 1, got {self.max_nodes!r}",
        )
        need(
            self.slots_per_node is None
            or (_is_int(self.slots_per_node) and self.slots_per_node >= 1),
            f"slots_per_node must be a whole number >= 1, got {self.slots_per_node!r}",
        )
        need(
            _is_int(self.interval_minutes)
            and MIN_EVALUATION_MINUTES <= self.interval_minutes <= MAX_EVALUATION_MINUTES,
            f"interval_minutes must be between {MIN_EVALUATION_MINUTES} and "
            f"{MAX_EVALUATION_MINUTES} (Batch's range for autoScaleEvaluationInterval), got "
            f"{self.interval_minutes!r}",
        )
        need(
            self.idle_minutes is None or (_is_int(self.idle_minutes) and self.idle_minutes >= 1),
            f"idle_minutes must be a whole number of minutes >= 1, got {self.idle_minutes!r}",
        )

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def follow_pending_tasks(
        cls,
        *,
        max_nodes: int,
        slots_per_node: int = 1,
        spot: bool = False,
        interval_minutes: int = MIN_EVALUATION_MINUTES,
    ) -> Autoscale:
        """Grow and shrink with the queue: ceil(pending tasks / slots per node), at most
        ``max_nodes``.

        Parameters
        ----------
        max_nodes
            Upper bound on the node count.
        slots_per_node
            The pool's task slots per node.
        spot
            Scale spot (low-priority) nodes instead of dedicated ones.
        interval_minutes
            Evaluation interval and sampling window (minutes, >= 5).

        Returns
        -------
        Autoscale

        Examples
        --------
        >>> print(Autoscale.follow_pending_tasks(max_nodes=4).formula.splitlines()[0])
        // azhpc autoscale: follow pending tasks, at most 4 dedicated nodes, 1 task slot(s) each
        """
        return cls(
            max_nodes=max_nodes,
            slots_per_node=slots_per_node,
            spot=spot,
            interval_minutes=interval_minutes,
        )

    @classmethod
    def scale_to_zero_when_idle(
        cls,
        *,
        idle_minutes: int = 15,
        nodes: int = 1,
        spot: bool = False,
        interval_minutes: int = MIN_EVALUATION_MINUTES,
    ) -> Autoscale:
        """Hold ``nodes`` nodes while there is work, and none after ``idle_minutes`` without any
        pending or running task.

        Parameters
        ----------
        idle_minutes
            Minutes without work before the pool goes to zero nodes.
        nodes
            Nodes to hold while there is work.
        spot
            Scale spot (low-priority) nodes instead of dedicated ones.
        interval_minutes
            Evaluation interval (minutes, >= 5).

        Returns
        -------
        Autoscale
        """
        return cls(
            max_nodes=nodes, spot=spot, interval_minutes=interval_minutes, idle_minutes=idle_minutes
        )

    def combine(self, other: Autoscale) -> Autoscale:
        """Both policies at once: follow pending tasks (from whichever has it) and scale to zero
        when idle (the longer idle time wins); the larger ``max_nodes`` and the shorter interval.

        Raises
        ------
        PoolSpecError
            When one policy scales spot nodes and the other dedicated ones.
        """

        if self.spot != other.spot:
            raise PoolSpecError(
                "autoscale",
                "cannot combine a policy for spot nodes with one for dedicated nodes; pass the "
                "same spot=... to both",
            )
        idles = [m for m in (self.idle_minutes, other.idle_minutes) if m is not None]
        slots = [s for s in (self.slots_per_node, other.slots_per_node) if s is not None]
        return Autoscale(
            max_nodes=max(self.max_nodes, other.max_nodes),
            slots_per_node=slots[0] if slots else None,
            spot=self.spot,
            interval_minutes=min(self.interval_minutes, other.interval_minutes),
            idle_minutes=max(idles) if idles else None,
        )

    def __add__(self, other: object) -> Autoscale:
        if not isinstance(other, Autoscale):
            return NotImplemented
        return self.combine(other)

    # -- rendering --------------------------------------------------------------------------

    @property
    def evaluation_interval(self) -> datetime.timedelta:
        """How often Batch evaluates the formula."""
        return datetime.timedelta(minutes=self.interval_minutes)

    @property
    def target_variable(self) -> str:
        """The Batch variable this policy sets."""
        return "$TargetLowPriorityNodes" if self.spot else "$TargetDedicatedNodes"

    @property
    def other_target_variable(self) -> str:
        """The Batch variable this policy holds at zero."""
        return "$TargetDedicatedNodes" if self.spot else "$TargetLowPriorityNodes"

    @property
    def formula(self) -> str:
        """The Batch autoscale formula text, one commented statement per line."""
        kind = "spot" if self.spot else "dedicated"
        window = f"TimeInterval_Minute * {self.interval_minutes}"
        lines: list[str] = []
        if self.slots_per_node is not None:
            slots = self.slots_per_node
            lines += [
                f"// azhpc autoscale: follow pending tasks, at most {self.max_nodes} {kind} "
                f"nodes, {slots} task slot(s) each",
                f"// share of the last {self.interval_minutes} minutes for which pending-task "
                "samples exist",
                f"$samples = $PendingTasks.GetSamplePercent({window});",
                "// pending = active + running tasks: the latest sample if samples are sparse, "
                "else the larger of the latest and the average",
                "$tasks = $samples < 70 ? max(0, $PendingTasks.GetSample(1)) : "
                f"max($PendingTasks.GetSample(1), avg($PendingTasks.GetSample({window})));",
                f"// nodes needed: pending tasks / {slots} slot(s) per node, rounded up, "
                f"at most {self.max_nodes}",
                f"$wanted = min({self.max_nodes}, ($tasks + {slots - 1}) / {slots});",
            ]
        else:
            lines += [
                f"// azhpc autoscale: hold {self.max_nodes} {kind} node(s) while there is work",
                f"$wanted = {self.max_nodes};",
            ]
        if self.idle_minutes is not None:
            idle = f"TimeInterval_Minute * {self.idle_minutes}"
            lines += [
                f"// scale to zero after {self.idle_minutes} minutes without any pending or "
                "running task",
                f"$idleSamples = $PendingTasks.GetSamplePercent({idle});",
                "// busy unless a full window of samples shows no task at all (too few samples: "
                "assume busy)",
                f"$busy = $idleSamples < 70 ? 1 : max($PendingTasks.GetSample({idle}));",
                "$wanted = $busy > 0 ? $wanted : 0;",
            ]
        lines += [
            f"// set the {kind} target; the other kind stays at zero",
            f"{self.target_variable} = $wanted;",
            f"{self.other_target_variable} = 0;",
            "// shrink only once a node's running tasks have completed",
            "$NodeDeallocationOption = taskcompletion;",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.formula


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Minutes without any task after which a fixed-size pool azhpc creates on Azure scales itself
#: to zero nodes (``PoolSpec(idle_shutdown_minutes=...)``).
IDLE_SHUTDOWN_MINUTES = 60


def idle_shutdown_formula(dedicated: int, spot: int, idle_minutes: int) -> str:
    """The autoscale formula of a fixed-size pool with an idle guard: ``dedicated`` and
    ``spot`` nodes while there is work (or too few samples to tell, as right after creation),
    none after ``idle_minutes`` without any pending or running task. A client killed outright
    cannot delete its pool; this makes the pool stop billing on its own.

    Parameters
    ----------
    dedicated, spot
        The pool's node counts while in use.
    idle_minutes
        Minutes without any task before the pool goes to zero nodes.
    """
    idle = f"TimeInterval_Minute * {idle_minutes}"
    return "\n".join(
        [
            f"// azhpc idle guard: {dedicated} dedicated and {spot} spot node(s) while the pool "
            f"is in use, none after {idle_minutes} minutes without any task",
            f"$idleSamples = $PendingTasks.GetSamplePercent({idle});",
            "// busy unless a full window of samples shows no task at all (too few samples: busy)",
            f"$busy = $idleSamples < 70 ? 1 : max($PendingTasks.GetSample({idle}));",
            f"$TargetDedicatedNodes = $busy > 0 ? {dedicated} : 0;",
            f"$TargetLowPriorityNodes = $busy > 0 ? {spot} : 0;",
            "// shrink only once a node's running tasks have completed",
            "$NodeDeallocationOption = taskcompletion;",
        ]
    )
