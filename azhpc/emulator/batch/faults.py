"""The emulator's control API, outside the Batch namespace: fault injection and request counts.

No SharedKey; loopback clients only. All bodies are JSON.

=========================================================  =======================================
``POST /_emulator/pools/{pool}/nodes/{node}/preempt``       running tasks requeued (requeueCount+1),
                                                            node ``preempted``, then boots again
                                                            (body ``{"comeBack": false}`` keeps it
                                                            preempted)
``POST /_emulator/pools/{pool}/nodes/{node}/unusable``      running tasks requeued, node
                                                            ``unusable`` for good
``POST /_emulator/pools/{pool}/starttaskfailure``           body ``{"enabled": true}``: the pool's
                                                            start tasks fail (exit code 1, a line
                                                            on stderr) and its nodes reboot into
                                                            ``starttaskfailed``; ``false`` heals
                                                            and reboots them; ``"nodes": [...]``
                                                            limits it to those nodes
``GET /_emulator/requestcounts``                            ``{"Task_AddCollection": 3, ...}``
``DELETE /_emulator/requestcounts``                         reset the counts
``GET /_emulator/health``                                   ``{"account": name, "pools": n}``
=========================================================  =======================================
"""

from __future__ import annotations

from azhpc.emulator.batch.model import ApiError, NodeState
from azhpc.emulator.batch.server import Request, Response, Route, Service

__all__ = ["CONTROL_ROUTES"]


def preempt(service: Service, request: Request) -> Response:
    """Preempt a node (spot eviction)."""
    body = request.json()
    with service.store.lock:
        pool = service.store.pool(request.args["poolId"])
        node = service.store.node(pool.id, request.args["nodeId"])
        requeued = [task_id for _job, task_id in node.running]
        service.engine.preempt(pool, node, come_back=body.get("comeBack", True) is not False)
        return Response(200, {"node": node.id, "state": node.state.value, "requeued": requeued})


def unusable(service: Service, request: Request) -> Response:
    """Make a node ``unusable``."""
    with service.store.lock:
        pool = service.store.pool(request.args["poolId"])
        node = service.store.node(pool.id, request.args["nodeId"])
        requeued = [task_id for _job, task_id in node.running]
        service.engine.make_unusable(node)
        return Response(200, {"node": node.id, "state": node.state.value, "requeued": requeued})


def start_task_failure(service: Service, request: Request) -> Response:
    """Make a pool's start task fail (or heal it); its nodes reboot to run it again."""
    body = request.json()
    with service.store.lock:
        pool = service.store.pool(request.args["poolId"])
        if not pool.spec.get("startTask"):
            raise ApiError(409, "NoStartTask", "The pool has no start task to fail.")
        enabled = body.get("enabled", True) is not False
        names = body.get("nodes")
        if names is not None:
            for name in names:
                service.store.node(pool.id, name)  # 404 for a node that is not there
        chosen = set(names) if names is not None else set(pool.nodes)
        if enabled:
            pool.fail_start_task_nodes = (
                None if names is None else (pool.fail_start_task_nodes or set()) | chosen
            )
        elif names is None:
            pool.fail_start_task_nodes = set()
        else:
            failing = pool.fail_start_task_nodes
            pool.fail_start_task_nodes = (set(pool.nodes) if failing is None else failing) - chosen
        pool.fail_start_task = pool.fail_start_task_nodes != set()
        for node in pool.nodes.values():
            if node.id not in chosen:
                continue
            service.engine.make_unusable(node)  # kills and requeues its work
            node.set_state(NodeState.REBOOTING)
            service.engine.boot(pool, node)
        return Response(200, {"pool": pool.id, "failStartTask": pool.fail_start_task})


def request_counts(service: Service, request: Request) -> Response:
    """Requests received in the Batch namespace, by REST operation id."""
    with service.store.lock:
        return Response(200, dict(service.store.request_counts))


def reset_request_counts(service: Service, request: Request) -> Response:
    """Forget the request counts."""
    with service.store.lock:
        service.store.request_counts.clear()
        return Response(200, {})


def health(service: Service, request: Request) -> Response:
    """A liveness probe."""
    with service.store.lock:
        return Response(200, {"account": service.account_name, "pools": len(service.store.pools)})


CONTROL_ROUTES = [
    Route("POST", "/_emulator/pools/{poolId}/nodes/{nodeId}/preempt", "preempt", preempt),
    Route("POST", "/_emulator/pools/{poolId}/nodes/{nodeId}/unusable", "unusable", unusable),
    Route(
        "POST",
        "/_emulator/pools/{poolId}/starttaskfailure",
        "starttaskfailure",
        start_task_failure,
    ),
    Route("GET", "/_emulator/requestcounts", "requestcounts", request_counts),
    Route("DELETE", "/_emulator/requestcounts", "requestcounts", reset_request_counts),
    Route("GET", "/_emulator/health", "health", health),
]
