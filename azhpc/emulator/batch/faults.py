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
``POST /_emulator/throttle``                                body ``{"operations": ["Task_List"],
                                                            "status": 503, "count": 2,
                                                            "retryAfter": 1}``: the next ``count``
                                                            requests of each operation (``"*"``:
                                                            any) answer 429 ``TooManyRequests``
                                                            or 503 ``ServerBusy`` with a
                                                            ``Retry-After`` header (seconds)
``DELETE /_emulator/throttle``                              stop throttling
``GET /_emulator/requestcounts``                            ``{"Task_AddCollection": 3, ...}``
``DELETE /_emulator/requestcounts``                         reset the counts
``GET /_emulator/health``                                   ``{"account": name, "pools": n}``
=========================================================  =======================================
"""

from __future__ import annotations

from azhpc.emulator.batch.model import ApiError, NodeState, Throttle
from azhpc.emulator.batch.routes_jobs import ROUTES as JOB_ROUTES
from azhpc.emulator.batch.routes_node_files import ROUTES as NODE_FILE_ROUTES
from azhpc.emulator.batch.routes_pools import ROUTES as POOL_ROUTES
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


def throttle(service: Service, request: Request) -> Response:
    """Throttle chosen operations, as Batch does under load: 429 or 503 with ``Retry-After``
    ("Error handling and detection in Azure Batch", learn.microsoft.com: "Throttling related
    errors. These errors include 429 or 503 status code HTTP responses with the Retry-after
    header")."""
    body = request.json()
    operations = body.get("operations")
    status = body.get("status", 503)
    count = body.get("count", 1)
    retry_after = body.get("retryAfter", 1)
    if not isinstance(operations, list) or not operations:
        raise ApiError(400, "InvalidRequestBody", "operations: a list of REST operation ids")
    if status not in (429, 503):
        raise ApiError(400, "InvalidRequestBody", "status must be 429 or 503")
    for name, value in (("count", count), ("retryAfter", retry_after)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ApiError(400, "InvalidRequestBody", f"{name} must be a whole number >= 0")
    known = {route.operation for route in (*JOB_ROUTES, *POOL_ROUTES, *NODE_FILE_ROUTES)}
    known.add("*")
    unknown = sorted(set(map(str, operations)) - known)
    if unknown:
        raise ApiError(400, "InvalidRequestBody", f"unknown operation(s): {', '.join(unknown)}")
    with service.store.lock:
        for operation in operations:
            if count:
                service.store.throttles[operation] = Throttle(status, count, retry_after)
            else:
                service.store.throttles.pop(operation, None)
        return Response(200, {"throttled": sorted(service.store.throttles)})


def stop_throttling(service: Service, request: Request) -> Response:
    """Answer every operation normally again."""
    with service.store.lock:
        service.store.throttles.clear()
        return Response(200, {"throttled": []})


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
    Route("POST", "/_emulator/throttle", "throttle", throttle),
    Route("DELETE", "/_emulator/throttle", "throttle", stop_throttling),
    Route("GET", "/_emulator/requestcounts", "requestcounts", request_counts),
    Route("DELETE", "/_emulator/requestcounts", "requestcounts", reset_request_counts),
    Route("GET", "/_emulator/health", "health", health),
]
