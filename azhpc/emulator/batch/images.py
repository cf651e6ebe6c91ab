"""The images the emulated Batch account supports: ``GET /supportedimages``.

List Supported Images ("Lists all Virtual Machine Images supported by the Azure Batch
service", ``Pools_ListSupportedImages`` in BatchService.json 2025-06-01, ``Account_List
SupportedImages`` in earlier versions) returns ``BatchSupportedImage`` objects: the node agent
SKU, the marketplace image reference, the OS type, the verification type and, for images on
their way out, ``batchSupportEndOfLife``. The list here is a small sample of what a real
account reports for Linux and Windows pools: the images azhpc uses by default (Ubuntu Server
22.04 and Ubuntu-HPC 22.04, both with the ``batch.node.ubuntu 22.04`` agent) and a few others,
so that a ``$filter`` on ``nodeAgentSKUId`` or ``osType`` has something to leave out. The real
list is longer and changes as Azure adds and retires images; ``azhpc doctor`` asks it.
"""

from __future__ import annotations

from typing import Any

from azhpc.emulator.batch import odata
from azhpc.emulator.batch.server import Request, Response, Service

__all__ = ["SUPPORTED_IMAGES", "list_supported_images"]


def _image(
    agent: str,
    publisher: str,
    offer: str,
    sku: str,
    *,
    os_type: str = "linux",
    verification: str = "verified",
    capabilities: tuple[str, ...] = (),
) -> dict[str, Any]:
    image: dict[str, Any] = {
        "nodeAgentSKUId": agent,
        "imageReference": {"publisher": publisher, "offer": offer, "sku": sku, "version": "latest"},
        "osType": os_type,
        "verificationType": verification,
    }
    if capabilities:
        image["capabilities"] = list(capabilities)
    return image


#: What the emulated account answers to List Supported Images, in list order.
SUPPORTED_IMAGES: tuple[dict[str, Any], ...] = (
    _image("batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts"),
    _image(
        "batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"
    ),
    _image("batch.node.ubuntu 22.04", "microsoft-dsvm", "ubuntu-hpc", "2204"),
    _image("batch.node.ubuntu 24.04", "canonical", "ubuntu-24_04-lts", "server"),
    _image("batch.node.el 8", "almalinux", "almalinux-hpc", "8_7-hpc-gen2"),
    _image(
        "batch.node.windows amd64",
        "microsoftwindowsserver",
        "windowsserver",
        "2022-datacenter",
        os_type="windows",
    ),
    _image(
        "batch.node.windows amd64",
        "microsoftwindowsserver",
        "windowsserver",
        "2022-datacenter-smalldisk",
        os_type="windows",
        capabilities=("DockerCompatible",),
        verification="unverified",
    ),
)

_STRING_EQ_NE = odata.Filterable(frozenset({"eq", "ne"}), "string")

#: "List support images" of "OData filters in Azure Batch" (learn.microsoft.com/rest/api/
#: batchservice/odata-filters-in-batch): osType, verificationType, nodeAgentSKUId; eq, ne.
FILTERABLE: dict[str, odata.Filterable] = {
    "nodeAgentSKUId": _STRING_EQ_NE,
    "osType": odata.Filterable(
        frozenset({"eq", "ne"}), "string", values=frozenset({"linux", "windows"})
    ),
    "verificationType": odata.Filterable(
        frozenset({"eq", "ne"}), "string", values=frozenset({"verified", "unverified"})
    ),
}


def _key(image: dict[str, Any]) -> str:
    ref = image["imageReference"]
    return f"{image['nodeAgentSKUId']}|{ref['publisher']}|{ref['offer']}|{ref['sku']}"


def list_supported_images(service: Service, request: Request) -> Response:
    """``GET /supportedimages`` (List Supported Images): pages, ``$filter``, ``maxresults``."""
    items = [(_key(image), dict(image)) for image in SUPPORTED_IMAGES]
    return Response(
        200,
        odata.page(
            items, request.query, f"{service.base_url}/supportedimages", filterable=FILTERABLE
        ),
    )
