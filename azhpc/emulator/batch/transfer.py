"""ResourceFiles in, OutputFiles out: the node agent's transfers, over loopback HTTP only.

- ``resourceFiles`` with ``httpUrl`` (e.g. an Azurite blob SAS URL) are downloaded to
  ``filePath`` under the task's working folder; ``storageContainerUrl`` (+ ``blobPrefix``) lists
  the container (``restype=container&comp=list``) and downloads every blob.
- ``outputFiles`` with ``destination.container.containerUrl`` are uploaded as block blobs
  (``PUT``, ``x-ms-blob-type: BlockBlob``) when ``uploadOptions.uploadCondition`` matches the
  outcome. ``filePattern`` is relative to the working folder (``../stdout.txt`` reaches the task
  folder); without wildcards ``path`` is the blob name, with wildcards it is a virtual folder.

Only 127.0.0.1/localhost URLs are accepted: the emulator never leaves the machine.
"""

from __future__ import annotations

import glob
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

__all__ = ["TransferError", "download_resource_files", "upload_output_files"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_BLOB_VERSION = "2021-12-02"
_TIMEOUT = 30.0


class TransferError(Exception):
    """A transfer failed; ``code`` is the Batch failure code for ``failureInfo``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _check_loopback(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK:
        raise TransferError(
            "BlobDownloadMiscError",
            f"the Batch emulator only transfers from/to loopback URLs, not {parts.hostname!r}",
        )
    return parts


def _redact(url: str) -> str:
    """A URL without its query (SAS signatures never reach messages)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _get(url: str) -> bytes:
    _check_loopback(url)
    request = urllib.request.Request(url, headers={"x-ms-version": _BLOB_VERSION})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as e:
        code = {404: "BlobNotFound", 403: "BlobAccessDenied"}.get(e.code, "BlobDownloadMiscError")
        raise TransferError(code, f"GET {_redact(url)} returned {e.code}") from e
    except OSError as e:
        raise TransferError("BlobDownloadMiscError", f"GET {_redact(url)} failed: {e}") from e


def _inside(base: Path, relative: str) -> Path:
    target = (base / relative).resolve()
    if not target.is_relative_to(base.resolve().parent):
        raise TransferError(
            "BlobDownloadMiscError", f"filePath {relative!r} leaves the task folder"
        )
    return target


def _list_container(container_url: str, prefix: str | None) -> list[str]:
    parts = _check_loopback(container_url)
    query = urllib.parse.parse_qsl(parts.query)
    query += [("restype", "container"), ("comp", "list")]
    if prefix:
        query.append(("prefix", prefix))
    names: list[str] = []
    marker = ""
    while True:
        q = query + ([("marker", marker)] if marker else [])
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
        root = ET.fromstring(_get(url))
        names += [el.text or "" for el in root.iter("Name") if el.text]
        marker = root.findtext("NextMarker") or ""
        if not marker:
            return names


def _blob_url(container_url: str, blob: str) -> str:
    parts = urllib.parse.urlsplit(container_url)
    path = parts.path.rstrip("/") + "/" + urllib.parse.quote(blob)
    return urllib.parse.urlunsplit(parts._replace(path=path))


def download_resource_files(files: list[dict[str, Any]], working_dir: Path) -> None:
    """Download ``resourceFiles`` into ``working_dir``.

    Raises
    ------
    TransferError
        A download failed, or a URL is not on loopback, or no source is given.
    """
    for spec in files:
        file_path = spec.get("filePath") or ""
        if spec.get("httpUrl"):
            if not file_path:
                raise TransferError("BlobDownloadMiscError", "filePath is required with httpUrl")
            targets = [(spec["httpUrl"], file_path)]
        elif spec.get("storageContainerUrl") or spec.get("autoStorageContainerName"):
            if not spec.get("storageContainerUrl"):
                raise TransferError(
                    "BlobDownloadMiscError", "autoStorageContainerName is not emulated"
                )
            url = spec["storageContainerUrl"]
            targets = [
                (_blob_url(url, name), os.path.join(file_path, name))
                for name in _list_container(url, spec.get("blobPrefix"))
            ]
        else:
            raise TransferError("BlobDownloadMiscError", "a resource file needs a source URL")
        for url, relative in targets:
            target = _inside(working_dir, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_get(url))


def _put_blob(url: str, data: bytes) -> None:
    _check_loopback(url)
    request = urllib.request.Request(
        url,
        data=data,
        method="PUT",
        headers={
            "x-ms-blob-type": "BlockBlob",
            "x-ms-version": _BLOB_VERSION,
            "Content-Length": str(len(data)),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT):
            pass
    except urllib.error.HTTPError as e:
        raise TransferError("FileUploadMiscError", f"PUT {_redact(url)} returned {e.code}") from e
    except OSError as e:
        raise TransferError("FileUploadMiscError", f"PUT {_redact(url)} failed: {e}") from e


def _matches(pattern: str, working_dir: Path) -> list[tuple[Path, str]]:
    """Files matching ``pattern`` with the name each gets under a wildcard ``path``."""
    full = os.path.join(str(working_dir), pattern)
    if not glob.has_magic(pattern):
        path = Path(os.path.normpath(full))
        return [(path, path.name)] if path.is_file() else []
    static = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        static.append(part)
    base = Path(os.path.normpath(os.path.join(str(working_dir), *static)))
    out = []
    for match in sorted(glob.glob(full, recursive=True)):
        path = Path(os.path.normpath(match))
        if path.is_file():
            out.append((path, path.relative_to(base).as_posix()))
    return out


def upload_output_files(files: list[dict[str, Any]], working_dir: Path, succeeded: bool) -> None:
    """Upload the ``outputFiles`` whose upload condition matches the outcome.

    Raises
    ------
    TransferError
        An upload failed or a destination is not a loopback container URL.
    """
    for spec in files:
        condition = str((spec.get("uploadOptions") or {}).get("uploadCondition", "taskcompletion"))
        condition = condition.lower()
        if (condition == "tasksuccess" and not succeeded) or (
            condition == "taskfailure" and succeeded
        ):
            continue
        container = (spec.get("destination") or {}).get("container") or {}
        container_url = container.get("containerUrl")
        if not container_url:
            raise TransferError("FileUploadMiscError", "only container destinations are emulated")
        pattern = str(spec.get("filePattern", ""))
        path = str(container.get("path") or "").strip("/")
        for file, relative in _matches(pattern, working_dir):
            if glob.has_magic(pattern):
                blob = f"{path}/{relative}" if path else relative
            else:
                blob = path or relative
            _put_blob(_blob_url(container_url, blob), file.read_bytes())
