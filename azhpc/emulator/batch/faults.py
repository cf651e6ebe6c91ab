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
                                                            start tasks fail (exit code 1) and its
                                                            nodes reboot into ``starttaskfailed``;
                                                            ``false`` heals and reboots them
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
        pool.fail_start_task = body.get("enabled", True) is not False
        for node in pool.nodes.values():
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
