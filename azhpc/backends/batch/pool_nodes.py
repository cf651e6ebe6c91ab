"""The nodes of one Batch pool, for :class:`~azhpc.backends.batch.lifecycle.BatchPool`: their
states, the wait for usable ones (printing their states), why a node's start task failed, and
the check of the environment a start task recorded against this client's.

:class:`PoolNodes` is the pool's half that does this (a mixin: it shares the pool's account,
id, timeout and messages); :func:`check_environment` and :class:`NodeStatus` stand alone.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.pool_body import ENVIRONMENT_RECORD
from azhpc.errors import EnvironmentMismatchError, PoolStartError
from azhpc.version import __version__

if TYPE_CHECKING:
    from azhpc.backends.batch.account import BatchAccount

__all__ = [
    "BROKEN",
    "ON_THE_WAY",
    "USABLE",
    "NodeStatus",
    "PoolNodes",
    "check_environment",
]

#: Node states in which a node takes tasks.
USABLE = frozenset({"idle", "running"})
#: Node states a node passes through on its way to being usable.
ON_THE_WAY = frozenset(
    {"creating", "starting", "waitingforstarttask", "rebooting", "reimaging", "leavingpool"}
)
#: Node states that mean a node will not take tasks until someone acts.
BROKEN = frozenset({"starttaskfailed", "unusable"})


def _client_environment() -> dict[str, str]:
    from importlib import metadata

    try:
        cloudpickle = metadata.version("cloudpickle")
    except metadata.PackageNotFoundError:
        cloudpickle = "?"
    return {
        "python": ".".join(map(str, sys.version_info[:2])),
        "cloudpickle": cloudpickle,
        "azhpc": __version__,
    }


def check_environment(recorded: dict[str, Any], pool_id: str) -> None:
    """Raise :class:`EnvironmentMismatchError` unless ``recorded`` matches this client.

    Python is compared by major.minor (pickles of functions depend on it), cloudpickle and
    azhpc by exact version.
    """
    client = _client_environment()
    node_python = ".".join(str(recorded.get("python", "?")).split(".")[:2])
    differences = []
    if node_python != client["python"]:
        differences.append(f"Python {node_python} on the nodes, {client['python']} here")
    for package in ("cloudpickle", "azhpc"):
        if str(recorded.get(package)) != client[package]:
            on_nodes = recorded.get(package, "(missing)")
            differences.append(f"{package} {on_nodes} on the nodes, {client[package]} here")
    if differences:
        raise EnvironmentMismatchError(
            f"pool {pool_id!r} was prepared for another environment: {'; '.join(differences)}. "
            "Tasks pickled here would fail there. Delete the pool so that azhpc creates it "
            f"again for this environment (azhpc.Pool({pool_id!r}).delete(), or a new pool id), "
            "or run this client with the nodes' versions. Nothing was submitted."
        )


@dataclass(frozen=True)
class NodeStatus:
    """One node of a pool, as the service reports it."""

    node_id: str
    state: str
    affinity_id: str
    start_task: str
    start_task_exit_code: int | None


class PoolNodes:
    """The node half of :class:`~azhpc.backends.batch.lifecycle.BatchPool`: list the nodes,
    wait for usable ones, explain the broken ones, read the environment they recorded.

    A mixin: it works on the pool's state, declared here.
    """

    account: BatchAccount
    pool_id: str
    timeout: float
    autoscaled: bool
    _autoscale_interval: float
    _target: int

    if TYPE_CHECKING:

        def _call(self, what: str, call: Any) -> Any: ...

        def _say(self, text: str) -> None: ...

    def node_states(self) -> dict[str, str]:
        """Each node's state, by node id."""
        nodes = self._call(
            f"list the nodes of pool {self.pool_id!r}",
            lambda: list(self.account.client().list_nodes(self.pool_id, select=["id", "state"])),
        )
        return {n.id: _enum(n.state) for n in nodes}

    def nodes(self) -> list[NodeStatus]:
        """Every node of the pool, in id order, with its state, affinity id and start task."""
        listed = self._call(
            f"list the nodes of pool {self.pool_id!r}",
            lambda: list(
                self.account.client().list_nodes(
                    self.pool_id, select=["id", "state", "affinityId", "startTaskInfo"]
                )
            ),
        )
        out = []
        for node in sorted(listed, key=lambda n: n.id):
            info = node.start_task_info
            out.append(
                NodeStatus(
                    node_id=node.id,
                    state=_enum(node.state),
                    affinity_id=str(node.affinity_id or ""),
                    start_task=_enum(info.state) if info is not None and info.state else "",
                    start_task_exit_code=info.exit_code if info is not None else None,
                )
            )
        return out

    def every_node_or_explain(self, wanted: int | None = None) -> list[NodeStatus]:
        """The usable nodes a run on every node (or on ``wanted`` nodes) gets.

        Raises :class:`PoolStartError` naming each node that is not usable and why (its start
        task's failure and the end of its stderr) when the run would be short of a node.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            nodes = self.nodes()
            settling = [n for n in nodes if n.state in ON_THE_WAY]
            if not settling or time.monotonic() > deadline:
                break
            time.sleep(0.05 if self.account.emulated else 2.0)  # nodes change on their own
        usable = [n for n in nodes if n.state in USABLE]
        need = max(1, len(nodes) if wanted is None else wanted)
        if len(usable) >= need:
            return usable[:need]
        states = {n.node_id: n.state for n in nodes}
        broken = [n.node_id for n in nodes if n.state not in USABLE]
        reasons = [
            f"{node_id} is {states[node_id]}: {self._start_task_failure(node_id)}"
            for node_id in broken[:5]
        ]
        raise PoolStartError(
            f"the run needs {need} node(s) of pool {self.pool_id!r} and only {len(usable)} "
            f"are usable:\n  "
            + "\n  ".join(reasons or ["(the pool has too few nodes)"])
            + "\nFix the start task (or the node), or run on fewer nodes with nodes=N."
        )

    def _autoscale_wait(self) -> float:
        """Seconds an autoscaled pool may take beyond ``timeout``: one evaluation interval
        (none on the emulator, whose clock runs fast)."""
        if not self.autoscaled or self.account.emulated:
            return 0.0
        return self._autoscale_interval

    def _autoscale_report(self) -> str:
        """The last autoscale evaluation of the pool, for an error message ("" if unknown)."""
        if not self.autoscaled:
            return ""
        try:
            pool = self._call(
                f"get pool {self.pool_id!r}",
                lambda: self.account.client().get_pool(self.pool_id, select=["autoScaleRun"]),
            )
        except Exception:  # a courtesy: never hide the real error
            return ""
        run = pool.auto_scale_run
        if run is None:
            return "; Batch has not evaluated its autoscale formula yet"
        if run.error is not None:
            details = "; ".join(str(v.value) for v in (run.error.error_values or []))
            return (
                f"; its last autoscale evaluation failed: {run.error.code}: "
                f"{run.error.message}" + (f" ({details})" if details else "")
            )
        return f"; its last autoscale evaluation gave {run.results}"

    def _wait_for_nodes(self) -> list[str]:
        deadline = time.monotonic() + self.timeout + self._autoscale_wait()
        last = None
        delay = 0.05 if self.account.emulated else 2.0
        while True:
            states = self.node_states()
            counts = collections.Counter(states.values())
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no nodes yet"
            if summary != last:
                self._say(f"pool {self.pool_id!r}: {summary}")
                last = summary
            usable = [n for n, s in states.items() if s in USABLE]
            settling = [n for n, s in states.items() if s in ON_THE_WAY]
            broken = [n for n, s in states.items() if s in BROKEN]
            # An autoscaled pool's first usable node is enough: tasks are already waiting.
            if usable and (self.autoscaled or not settling or len(usable) >= self._target):
                if broken:
                    self._say(self._broken_message(broken, states, fatal=False))
                return usable
            if states and not usable and not settling and broken:
                raise PoolStartError(self._broken_message(broken, states, fatal=True))
            if time.monotonic() > deadline:
                waited = self.timeout + self._autoscale_wait()
                raise PoolStartError(
                    f"pool {self.pool_id!r} has no usable node after {waited:.0f} s "
                    f"({summary}{self._autoscale_report()}); check the VM size's quota in the "
                    "account, or wait longer with azhpc.Pool(..., timeout=seconds)"
                )
            time.sleep(delay)  # polling the service: nodes change state on their own
            delay = min(delay * 2, 0.5 if self.account.emulated else 10.0)

    def _broken_message(self, broken: list[str], states: dict[str, str], *, fatal: bool) -> str:
        reasons = []
        for node_id in broken[:5]:
            reasons.append(f"{node_id} is {states[node_id]}: {self._start_task_failure(node_id)}")
        head = (
            f"no node of pool {self.pool_id!r} became usable"
            if fatal
            else f"pool {self.pool_id!r} runs without {len(broken)} node(s)"
        )
        return f"{head}:\n  " + "\n  ".join(reasons)

    def _start_task_failure(self, node_id: str) -> str:
        client = self.account.client()
        try:
            node = self._call(
                f"get node {node_id!r}", lambda: client.get_node(self.pool_id, node_id)
            )
        except Exception as error:  # the reason is a courtesy: never hide the real error
            return f"(could not read why: {type(error).__name__})"
        info = node.start_task_info
        why = "start task failed"
        if info is not None and info.failure_info is not None:
            why = f"start task {info.failure_info.code}: {info.failure_info.message}"
            if info.exit_code is not None:
                why += f" (exit code {info.exit_code})"
        try:
            stderr = b"".join(
                client.download_node_file(self.pool_id, node_id, "startup/stderr.txt")
            )
        except Exception:  # none when the task never ran (a resource file it could not fetch)
            return why
        tail = stderr[-600:].decode(errors="replace").strip()
        return f"{why}; stderr ends: {tail}" if tail else why

    def _read_environment(self, nodes: list[str]) -> dict[str, Any]:
        path = f"shared/{ENVIRONMENT_RECORD}"
        data = self._call(
            f"read {path} from node {nodes[0]!r}",
            lambda: b"".join(
                self.account.client().download_node_file(self.pool_id, nodes[0], path)
            ),
        )
        try:
            return dict(json.loads(data))
        except (ValueError, TypeError):
            raise EnvironmentMismatchError(
                f"pool {self.pool_id!r} has no readable environment record ({path}): it was "
                "not prepared by azhpc's start task; create the pool with azhpc.Pool(...)"
            ) from None


def _enum(value: Any) -> str:
    """An SDK enum member (or plain string) as Batch's lower-case REST value."""
    return str(getattr(value, "value", value)).lower()
