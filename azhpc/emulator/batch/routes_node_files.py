"""Files on compute nodes: ``/pools/{poolId}/nodes/{nodeId}/files[/{filePath}]``.

Paths are relative to the node's root folder, as on Batch (``startup/stdout.txt``,
``shared/...``, ``workitems/...``). The file responses are those of task files
(:mod:`azhpc.emulator.batch.routes_jobs`), served from another folder.
"""

from __future__ import annotations

from pathlib import Path

from azhpc.emulator.batch import odata
from azhpc.emulator.batch.model import ApiError
from azhpc.emulator.batch.routes_jobs import file_items, file_response
from azhpc.emulator.batch.server import Request, Response, Route, Service

__all__ = ["ROUTES"]


def _node_root(service: Service, request: Request) -> Path:
    with service.store.lock:
        return service.store.node(request.args["poolId"], request.args["nodeId"]).root


def download_node_file(service: Service, request: Request) -> Response:
    """``GET .../nodes/{nodeId}/files/{filePath}`` (File_GetFromComputeNode); ``ocp-range``."""
    return file_response(service, request, _node_root(service, request), body=True)


def node_file_properties(service: Service, request: Request) -> Response:
    """``HEAD .../nodes/{nodeId}/files/{filePath}`` (File_GetPropertiesFromComputeNode)."""
    return file_response(service, request, _node_root(service, request), body=False)


def list_node_files(service: Service, request: Request) -> Response:
    """``GET .../nodes/{nodeId}/files`` (File_ListFromComputeNode); ``recursive``."""
    root = _node_root(service, request)
    url = f"{service.base_url}/pools/{request.args['poolId']}/nodes/{request.args['nodeId']}/files"
    if not root.is_dir():
        raise ApiError(404, "NodeNotFound", "The specified node does not exist.")
    return Response(200, odata.page(file_items(root, request, url), request.query, url))


ROUTES = [
    Route(
        "GET", "/pools/{poolId}/nodes/{nodeId}/files", "File_ListFromComputeNode", list_node_files
    ),
    Route(
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
        "File_GetFromComputeNode",
        download_node_file,
    ),
    Route(
        "HEAD",
        "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
        "File_GetPropertiesFromComputeNode",
        node_file_properties,
    ),
]
