"""Renames: atomic where the storage can (a folder, ADLS Gen2 DFS), copy+delete where not.

ADLS Gen2 accounts with a hierarchical namespace rename a folder in one atomic call of the DFS
API (azure-storage-file-datalake). Plain Blob Storage accounts and Azurite do not serve that
API (Azurite has no DFS endpoint at all), so the fallback uses the Blob API that adlfs speaks:
copy every blob under the source to the target, then delete the sources. The fallback is not
atomic: until it ends, readers may see the target half-filled and the source still there.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Any

from azhpc.errors import LakePathError
from azhpc.lake.paths import lake_path, relative

if TYPE_CHECKING:
    from azhpc.lake.lake import Lake

__all__ = ["DfsUnavailable", "Rename", "detect_hierarchical_namespace", "rename"]

log = logging.getLogger("azhpc.lake")

# DFS error codes that mean "this endpoint/account does not do hierarchical-namespace calls".
_UNSUPPORTED_CODES = {
    "EndpointUnsupportedAccountFeatures",
    "FeatureNotSupported",
    "HierarchicalNamespaceNotEnabled",
    "UnsupportedOperation",
    "UnsupportedHttpVerb",
    "UnsupportedQueryParameter",
    "UnsupportedHeader",
    "InvalidUri",
    "InvalidQueryParameterValue",
    "MissingRequiredHeader",
}
_NOT_FOUND_CODES = {"PathNotFound", "SourcePathNotFound", "FilesystemNotFound", "ContainerNotFound"}


class DfsUnavailable(Exception):
    """The endpoint does not serve the DFS (hierarchical namespace) API."""


class Rename(enum.Enum):
    """How :meth:`Lake.rename` moved a path."""

    #: One atomic call: a local ``rename``, or the ADLS Gen2 DFS rename (hierarchical namespace).
    ATOMIC = "atomic"
    #: Blob API fallback: copy every blob, then delete the originals (not atomic).
    COPY_DELETE = "copy+delete"


def detect_hierarchical_namespace(lake: Lake) -> bool:
    """Ask the account whether it has a hierarchical namespace (``x-ms-is-hns-enabled``).

    Azurite and plain Blob Storage answer no. If the credentials may not ask (a container
    SAS, for instance), the container is asked; if that fails too, the answer is no, so the
    blob fallback is used.
    """
    service = lake.filesystem().fs.service_client
    askers = (
        service.get_account_information,
        service.get_container_client(lake.settings.container).get_account_information,
    )
    for ask in askers:
        try:
            info = lake._run(ask)
        except Exception as error:
            log.debug("account information not available: %s", type(error).__name__)
            continue
        return bool(info.get("is_hns_enabled"))
    return False


def rename(lake: Lake, source: str, target: str) -> Rename:
    """Move ``source`` to ``target`` (lake paths); see :meth:`azhpc.lake.Lake.rename`."""

    if lake_path(source) == "/" or lake_path(target) == "/":
        raise LakePathError("the lake's root cannot be renamed, nor replaced by a rename")
    if (lake_path(target) + "/").startswith(lake_path(source) + "/"):
        raise LakePathError(f"cannot move {lake_path(source)} into itself ({lake_path(target)})")
    fs = lake.filesystem()
    src, dst = lake_path(source), lake_path(target)
    if not fs.exists(src):
        raise FileNotFoundError(f"no such file or folder in the lake: {lake_path(source)}")
    if fs.exists(dst):
        raise FileExistsError(f"the lake already has {lake_path(target)}")
    if lake.is_local:
        fs.mv(src, dst, recursive=True)
        return Rename.ATOMIC
    if lake.hierarchical_namespace:
        try:
            lake._run(_dfs_rename, lake, source, target, fs.isdir(src))
            fs.invalidate_cache()
            return Rename.ATOMIC
        except DfsUnavailable as error:
            log.info(
                "the DFS rename is not served for %s (%s); falling back to blob copy+delete",
                lake.settings.name, error,
            )  # fmt: skip
    _copy_then_delete(fs, src, dst)
    return Rename.COPY_DELETE


def _copy_then_delete(fs: Any, src: str, dst: str) -> None:
    """Copy the lake path ``src`` (file or folder) to ``dst`` on the rooted ``fs``, then delete."""
    if fs.isdir(src):
        sources = [p for p in fs.find(src) if p.rstrip("/") != src]
        targets = [dst + p[len(src) :] for p in sources]
    else:
        sources, targets = [src], [dst]
    if sources:
        fs.copy(sources, targets)
    fs.rm(src, recursive=True)
    fs.invalidate_cache()


async def _dfs_rename(lake: Lake, source: str, target: str, is_dir: bool) -> None:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError
    from azure.storage.filedatalake.aio import DataLakeServiceClient

    container = lake.settings.container
    options = lake.storage_options()
    if "connection_string" in options:
        client = DataLakeServiceClient.from_connection_string(options["connection_string"])
    else:
        fs = lake.filesystem().fs
        credential = options.get("credential") or options.get("account_key")
        if credential is None and options.get("sas_token"):
            credential = options["sas_token"].lstrip("?")
        if credential is None:
            credential = fs.credential  # adlfs's DefaultAzureCredential
        # the blob endpoint's DFS twin (blob_endpoint, when set, is adlfs's account_host)
        host = options.get("account_host") or f"{options['account_name']}.blob.core.windows.net"
        client = DataLakeServiceClient(
            "https://" + host.replace(".blob.", ".dfs.", 1), credential=credential
        )
    new_name = f"{container}/{relative(target)}"
    try:
        async with client:
            if is_dir:
                await client.get_directory_client(container, relative(source)).rename_directory(
                    new_name
                )
            else:
                await client.get_file_client(container, relative(source)).rename_file(new_name)
    except ServiceRequestError as error:
        raise DfsUnavailable(f"no DFS endpoint: {type(error).__name__}") from None
    except HttpResponseError as error:
        status, code = error.status_code, error.error_code
        if status in (401, 403):
            raise
        if code in _NOT_FOUND_CODES:
            raise FileNotFoundError(
                f"no such file or folder in the lake: {lake_path(source)}"
            ) from None
        if code is None or code in _UNSUPPORTED_CODES or status in (405, 501):
            raise DfsUnavailable(f"HTTP {status} {code or 'without an error code'}") from None
        raise
