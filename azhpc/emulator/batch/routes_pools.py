"""Pools and compute nodes: ``/pools``, ``/pools/{poolId}/...``, ``/pools/{poolId}/nodes``;
the images pools can use: ``/supportedimages`` (see ``images.py``)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from azhpc.emulator.batch import odata
from azhpc.emulator.batch.autoscale import evaluation_interval
from azhpc.emulator.batch.formula import parse
from azhpc.emulator.batch.images import list_supported_images
from azhpc.emulator.batch.model import AllocationState, ApiError, NodeState, Pool, PoolState
from azhpc.emulator.batch.server import Request, Response, Route, Service, resource_headers

__all__ = ["ROUTES", "add_pool"]

#: Pools_EnablePoolAutoScale: at most one call per pool in this many seconds (service clock).
ENABLE_AUTOSCALE_SECONDS = 30.0
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: VM sizes Azure has retired, by lower-cased name, with their retirement day. Batch refuses
#: to create pools of them (the emulator cannot import azhpc.pools' catalogue: it sits below
#: it). Sources, on learn.microsoft.com: "Migrate your H and H-series Promo virtual machines
#: by August 31, 2022" (H-series retirement) and "NCv3 and NC6s NC12s NC24s Retirement"
#: (September 30, 2025).
RETIRED_VM_SIZES: dict[str, dt.date] = {
    **{
        f"standard_{name}{promo}": dt.date(2022, 8, 31)
        for name in ("h8", "h8m", "h16", "h16r", "h16m", "h16mr")
        for promo in ("", "_promo")
    },
    **{f"standard_{name}": dt.date(2025, 9, 30) for name in ("nc6s_v3", "nc12s_v3", "nc24s_v3")},
}


def _require(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if body.get(name) in (None, ""):
            raise ApiError(
                400,
                "MissingRequiredProperty",
                f"A required property was not specified in the request body: {name}",
            )


def _check_id(value: str, what: str) -> None:
    if not _ID.match(value):
        raise ApiError(
            400,
            "InvalidPropertyValue",
            f"The {what} id {value!r} may contain letters, digits, '-' and '_', at most 64.",
        )


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name) or 0
    if not isinstance(value, int) or value < 0:
        raise ApiError(400, "InvalidPropertyValue", f"{name} must be a non-negative integer")
    return value


def _being_deleted() -> ApiError:
    # Pool_Delete (BatchService.json 2025-06-01, and the SDK's begin_delete_pool): "If you call
    # an Update, Patch or Delete API on a Pool in the deleting state, it will fail with HTTP
    # status code 409 with error code PoolBeingDeleted." BatchErrorCodeStrings.PoolBeingDeleted:
    # "A pool operation was attempted which is not permitted when the pool is in the process
    # of being deleted."
    return ApiError(409, "PoolBeingDeleted", "The specified pool has been marked for deletion.")


def _active_pool(service: Service, pool_id: str) -> Pool:
    pool = service.store.pool(pool_id)
    if pool.state == PoolState.DELETING:
        raise _being_deleted()
    return pool


def _check_vm_size(body: dict[str, Any]) -> None:
    """A retired size is refused as Batch refuses a size it does not offer: 400
    ``InvalidPropertyValue`` ("The value provided for one of the properties in the request body
    is invalid.", as Azure/batch-shipyard#53 and hashicorp/terraform#36698 quote it; the
    service logs "Invalid property value for vmSize", Azure/azure-batch-cli-extensions#119)."""
    size = str(body.get("vmSize", ""))
    retired = RETIRED_VM_SIZES.get(size.strip().lower())
    if retired is not None and retired <= dt.date.today():
        raise ApiError(
            400,
            "InvalidPropertyValue",
            "The value provided for one of the properties in the request body is invalid.\n"
            f"vmSize {size} was retired on {retired.isoformat()} and is not available.",
        )


def create_pool(service: Service, request: Request) -> Response:
    """``POST /pools`` (Pool_Add)."""
    body = request.json()
    _require(body, "id")
    _check_id(body["id"], "pool")
    with service.store.lock:
        existing = service.store.pools.get(body["id"])
        if existing is not None and existing.state == PoolState.DELETING:
            # Adding a pool whose id is still being deleted is refused with PoolBeingDeleted
            # (Azure/doAzureParallel R/cluster.R waits the deletion out on exactly that code).
            raise _being_deleted()
        if existing is not None:
            raise ApiError(409, "PoolExists", "The specified pool already exists.")
        pool = add_pool(service, body)
        location = f"{service.base_url}/pools/{pool.id}"
        return Response(201, headers=resource_headers(pool, location))


def add_pool(service: Service, body: dict[str, Any]) -> Pool:
    """Check a pool's create body (``PoolAddParameter``, or an auto pool's
    ``PoolSpecification`` with an id given) and start it. Caller holds the lock."""
    _require(body, "vmSize")
    _check_vm_size(body)
    if "cloudServiceConfiguration" in body:
        raise ApiError(400, "InvalidPropertyValue", "cloudServiceConfiguration is retired.")
    auto = bool(body.get("enableAutoScale"))
    if auto:
        _require(body, "autoScaleFormula")
        # BatchService.json (2025-06-01), targetDedicatedNodes / targetLowPriorityNodes: "This
        # property must not be specified if enableAutoScale is set to true" (0 included).
        if body.get("targetDedicatedNodes") is not None or (
            body.get("targetLowPriorityNodes") is not None
        ):
            raise ApiError(
                400,
                "InvalidPropertyValue",
                "targetDedicatedNodes/targetLowPriorityNodes cannot be set with enableAutoScale.",
            )
    dedicated = _count(body, "targetDedicatedNodes")
    low_priority = _count(body, "targetLowPriorityNodes")
    start_task = body.get("startTask")
    if start_task is not None:
        _require(start_task, "commandLine")
    if auto:
        formula = parse(body["autoScaleFormula"])
        interval = evaluation_interval(body.get("autoScaleEvaluationInterval"))
    store = service.store
    pool = Pool(id=body["id"], spec=body)
    store.pools[pool.id] = pool
    if auto:
        pool.enable_auto_scale = True
        pool.auto_scale_formula = body["autoScaleFormula"]
        # Evaluated at once, then every autoScaleEvaluationInterval (runner.py).
        service.engine.autoscale.enable(pool, formula, interval.total_seconds())
    else:
        service.engine.resize(pool, dedicated, low_priority)
    return pool


def list_pools(service: Service, request: Request) -> Response:
    """``GET /pools`` (Pool_List)."""
    with service.store.lock:
        items = [(p.id, p.to_json(service.base_url)) for p in service.store.pools.values()]
    return Response(200, odata.page(items, request.query, f"{service.base_url}/pools"))


def get_pool(service: Service, request: Request) -> Response:
    """``GET /pools/{poolId}`` (Pool_Get)."""
    with service.store.lock:
        pool = service.store.pool(request.args["poolId"])
        body = odata.select(pool.to_json(service.base_url), request.query.get("$select"))
        return Response(200, body, resource_headers(pool))


def pool_exists(service: Service, request: Request) -> Response:
    """``HEAD /pools/{poolId}`` (Pool_Exists): 200 or 404, no body."""
    with service.store.lock:
        pool = service.store.pools.get(request.args["poolId"])
        if pool is None:
            return Response(404)
        return Response(200, headers=resource_headers(pool))


def delete_pool(service: Service, request: Request) -> Response:
    """``DELETE /pools/{poolId}`` (Pool_Delete): ``deleting``, then gone; deleting a pool
    that is already being deleted is 409 ``PoolBeingDeleted``."""
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        service.engine.delete_pool(pool)
        return Response(202)


def resize_pool(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/resize`` (Pool_Resize)."""
    body = request.json()
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        if pool.enable_auto_scale:
            raise ApiError(
                409,
                "AutoScalingEnabled",
                "The specified pool has autoscale enabled; it cannot be resized manually.",
            )
        _refuse_while_resizing(pool)
        dedicated = (
            _count(body, "targetDedicatedNodes")
            if "targetDedicatedNodes" in body
            else (pool.target_dedicated)
        )
        low = (
            _count(body, "targetLowPriorityNodes")
            if "targetLowPriorityNodes" in body
            else pool.target_low_priority
        )
        service.engine.resize(pool, dedicated, low)
        return Response(202, headers=resource_headers(pool))


def _refuse_while_resizing(pool: Pool) -> None:
    """Pools_ResizePool: "If the Pool is already resizing, the request fails with status code
    409" (Batch's error code table: ``PoolBeingResized``, "The specified pool is being
    resized"); Pools_EnablePoolAutoScale refuses the same."""
    if pool.allocation_state == AllocationState.RESIZING:
        raise ApiError(409, "PoolBeingResized", "The specified pool is being resized.")


def stop_resize(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/stopresize`` (Pool_StopResize)."""

    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        pool.resize_generation += 1
        pool.set_allocation_state(AllocationState.STEADY)
        return Response(202, headers=resource_headers(pool))


def enable_autoscale(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/enableautoscale`` (Pool_EnableAutoScale)."""
    body = request.json()
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        # Pools_EnablePoolAutoScale: "You cannot enable automatic scaling on a Pool if a resize
        # operation is in progress on the Pool ... You cannot call this API for the same Pool
        # more than once every 30 seconds" (30 s of the service's clock, which runs fast).
        now = time.monotonic()
        last = pool.last_enable_auto_scale
        if (
            last is not None
            and now - last < ENABLE_AUTOSCALE_SECONDS * service.engine.autoscale.minute / 60
        ):
            raise ApiError(
                503,
                "TooManyEnableAutoScaleRequests",
                "Too many Enable Pool AutoScale requests are issued on the pool.",
            )
        _refuse_while_resizing(pool)
        # Pool_EnableAutoScale (the formula page, "Enable autoscaling on an existing pool"): a
        # pool without autoscale needs a formula; one with it keeps what the request omits.
        text = body.get("autoScaleFormula") or (
            pool.auto_scale_formula if pool.enable_auto_scale else None
        )
        if not text:
            raise ApiError(
                400,
                "MissingRequiredProperty",
                "A required property was not specified in the request body: autoScaleFormula",
            )
        formula = parse(text)
        given = body.get("autoScaleEvaluationInterval") or (
            pool.spec.get("autoScaleEvaluationInterval") if pool.enable_auto_scale else None
        )
        interval = evaluation_interval(given)  # 15 minutes when not given
        pool.enable_auto_scale = True
        pool.last_enable_auto_scale = now
        pool.auto_scale_formula = text
        pool.spec["autoScaleEvaluationInterval"] = given or "PT15M"
        pool.touch()
        service.engine.autoscale.enable(pool, formula, interval.total_seconds())
        return Response(200, headers=resource_headers(pool))


def disable_autoscale(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/disableautoscale`` (Pool_DisableAutoScale)."""
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        pool.enable_auto_scale = False
        service.engine.autoscale.disable(pool)
        pool.touch()
        return Response(200, headers=resource_headers(pool))


def evaluate_autoscale(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/evaluateautoscale`` (Pool_EvaluateAutoScale): no resize.

    A formula that does not parse is a 400; one that fails while running is a 200 whose
    ``AutoScaleRun`` has the ``error`` (the REST reference's example: ``InsufficientSampleData``).
    """
    body = request.json()
    _require(body, "autoScaleFormula")
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        if not pool.enable_auto_scale:
            raise ApiError(
                409, "AutoScalingNotEnabled", "The pool does not have autoscale enabled."
            )
        run = service.engine.autoscale.evaluate(pool, parse(body["autoScaleFormula"]))
        return Response(200, run.body)


def remove_nodes(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/removenodes`` (Pool_RemoveNodes): tasks requeued."""
    body = request.json()
    _require(body, "nodeList")
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        for node_id in body["nodeList"]:
            node = service.store.node(pool.id, node_id)
            service.engine.remove_node(pool, node)
            if node.is_dedicated:
                pool.target_dedicated = max(0, pool.target_dedicated - 1)
            else:
                pool.target_low_priority = max(0, pool.target_low_priority - 1)
        pool.touch()
        return Response(202, headers=resource_headers(pool))


def list_nodes(service: Service, request: Request) -> Response:
    """``GET /pools/{poolId}/nodes`` (ComputeNode_List)."""
    with service.store.lock:
        pool = service.store.pool(request.args["poolId"])
        items = [(n.id, n.to_json(service.base_url, pool)) for n in pool.nodes.values()]
    url = f"{service.base_url}/pools/{request.args['poolId']}/nodes"
    return Response(200, odata.page(items, request.query, url))


def get_node(service: Service, request: Request) -> Response:
    """``GET /pools/{poolId}/nodes/{nodeId}`` (ComputeNode_Get)."""
    with service.store.lock:
        pool = service.store.pool(request.args["poolId"])
        node = service.store.node(pool.id, request.args["nodeId"])
        body = node.to_json(service.base_url, pool)
    return Response(200, odata.select(body, request.query.get("$select")))


def reboot_node(service: Service, request: Request) -> Response:
    """``POST /pools/{poolId}/nodes/{nodeId}/reboot`` (ComputeNode_Reboot): tasks requeued."""
    with service.store.lock:
        pool = _active_pool(service, request.args["poolId"])
        node = service.store.node(pool.id, request.args["nodeId"])
        service.engine.make_unusable(node)  # kills and requeues its work
        node.set_state(NodeState.REBOOTING)
        service.engine.boot(pool, node)
        return Response(202)


ROUTES = [
    Route("POST", "/pools", "Pool_Add", create_pool),
    Route("GET", "/pools", "Pool_List", list_pools),
    Route("GET", "/pools/{poolId}", "Pool_Get", get_pool),
    Route("HEAD", "/pools/{poolId}", "Pool_Exists", pool_exists),
    Route("DELETE", "/pools/{poolId}", "Pool_Delete", delete_pool),
    Route("POST", "/pools/{poolId}/resize", "Pool_Resize", resize_pool),
    Route("POST", "/pools/{poolId}/stopresize", "Pool_StopResize", stop_resize),
    Route("POST", "/pools/{poolId}/enableautoscale", "Pool_EnableAutoScale", enable_autoscale),
    Route("POST", "/pools/{poolId}/disableautoscale", "Pool_DisableAutoScale", disable_autoscale),
    Route(
        "POST", "/pools/{poolId}/evaluateautoscale", "Pool_EvaluateAutoScale", evaluate_autoscale
    ),
    Route("POST", "/pools/{poolId}/removenodes", "Pool_RemoveNodes", remove_nodes),
    Route("GET", "/pools/{poolId}/nodes", "ComputeNode_List", list_nodes),
    Route("GET", "/pools/{poolId}/nodes/{nodeId}", "ComputeNode_Get", get_node),
    Route("POST", "/pools/{poolId}/nodes/{nodeId}/reboot", "ComputeNode_Reboot", reboot_node),
    Route("GET", "/supportedimages", "Account_ListSupportedImages", list_supported_images),
]
