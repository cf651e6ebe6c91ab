"""The Data Lake: one fsspec filesystem per session, the same paths on every profile.

Lake paths look like ADLS and U-SQL paths (``/raw/2024/x.parquet``). On the ``local`` profile
they live in a folder (``~/.azhpc/lake`` unless ``lake_root`` says otherwise); on ``emulated``
in Azurite; on ``azure`` in an ADLS Gen2 / Blob Storage container, through adlfs::

    import azhpc, pandas as pd
    azhpc.connect()                                   # or connect("emulated"), connect("mylake")
    df.to_parquet(azhpc.lake.url("/raw/x.parquet"), storage_options=azhpc.lake.storage_options())
    azhpc.lake.ls("/raw")                             # ['/raw/x.parquet']
    azhpc.lake.put("big.csv", "/raw/big.csv")         # progress for large transfers

The functions here use the current session's lake (``azhpc.session.current_session().lake``);
:class:`Lake` has the same methods. See ``docs/lake.md``.
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

from azhpc.errors import LakeAuthError, LakeError, LakePathError, LakeUnreachableError
from azhpc.lake import progress
from azhpc.lake.lake import Lake, Rename, StorageOptions
from azhpc.lake.paths import lake_path

if TYPE_CHECKING:
    from azhpc.lake.progress import TransferCounter, TransferProgress
    from azhpc.lake.rooted import RootedFileSystem

__all__ = [
    "Lake",
    "LakeAuthError",
    "LakeError",
    "LakePathError",
    "LakeUnreachableError",
    "Rename",
    "RootedFileSystem",
    "StorageOptions",
    "TransferCounter",
    "TransferProgress",
    "current_lake",
    "exists",
    "filesystem",
    "get",
    "lake_path",
    "ls",
    "open",
    "put",
    "rename",
    "rm",
    "storage_options",
    "url",
]


def __getattr__(name: str) -> Any:
    if name in ("TransferCounter", "TransferProgress"):
        return getattr(progress, name)
    if name == "RootedFileSystem":
        from azhpc.lake.rooted import RootedFileSystem  # lazy: fsspec, only when files are touched

        return RootedFileSystem
    raise AttributeError(f"module 'azhpc.lake' has no attribute {name!r}")


def current_lake() -> Lake:
    """The current session's lake (opening the default ``local`` session if there is none)."""
    from azhpc.session import (
        current_session,  # lazy: lower layers import azhpc.lake.*, which runs this file
    )

    lake = current_session().lake
    if lake is None:
        raise LakeError("the current session has no lake; open one with azhpc.connect()")
    return lake


def filesystem() -> RootedFileSystem:
    """The current lake as an fsspec filesystem of lake paths; see :meth:`Lake.filesystem`."""
    return current_lake().filesystem()


def storage_options() -> StorageOptions:
    """``storage_options`` for pandas/pyarrow/duckdb; see :meth:`Lake.storage_options`."""
    return current_lake().storage_options()


def url(path: str = "/") -> str:
    """The URL of a lake path on the current profile; see :meth:`Lake.url`."""
    return current_lake().url(path)


def put(
    local_path: str | os.PathLike[str], path: str, *, recursive: bool = False,
    progress: bool | None = None,
) -> TransferCounter:  # fmt: skip
    """Upload to the current lake; see :meth:`Lake.put`."""
    return current_lake().put(local_path, path, recursive=recursive, progress=progress)


def get(
    path: str, local_path: str | os.PathLike[str], *, recursive: bool = False,
    progress: bool | None = None,
) -> TransferCounter:  # fmt: skip
    """Download from the current lake; see :meth:`Lake.get`."""
    return current_lake().get(path, local_path, recursive=recursive, progress=progress)


def ls(path: str = "/", *, detail: bool = False) -> list[Any]:
    """List a folder of the current lake; see :meth:`Lake.ls`."""
    return current_lake().ls(path, detail=detail)


def open(path: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open a file of the current lake; see :meth:`Lake.open`."""
    return current_lake().open(path, mode, **kwargs)


def exists(path: str) -> bool:
    """Whether a lake path exists; see :meth:`Lake.exists`."""
    return current_lake().exists(path)


def rm(path: str, *, recursive: bool = False) -> None:
    """Remove from the current lake; see :meth:`Lake.rm`."""
    current_lake().rm(path, recursive=recursive)


def rename(source: str, target: str) -> Rename:
    """Move within the current lake; see :meth:`Lake.rename`."""
    return current_lake().rename(source, target)
