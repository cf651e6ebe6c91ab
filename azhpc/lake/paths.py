"""Lake paths: ``/raw/2024/x.parquet``, the way ADLS and U-SQL write them."""

from __future__ import annotations

import os
import posixpath

from azhpc.errors import LakePathError

__all__ = ["confined", "lake_path", "relative"]


def lake_path(path: str) -> str:
    """The canonical form of a lake path: absolute, ``/``-separated, no ``.`` or ``..`` parts.

    ``raw/x.csv``, ``/raw/x.csv`` and ``/raw/./x.csv`` are all ``/raw/x.csv``; the root is ``/``.

    Parameters
    ----------
    path
        A lake path.

    Returns
    -------
    str

    Raises
    ------
    LakePathError
        The path is not a string, is a URL, or climbs above the root with ``..``.

    Examples
    --------
    >>> lake_path("raw//2024/../2025/x.csv")
    '/raw/2025/x.csv'
    """
    if hasattr(path, "__fspath__"):
        path = path.__fspath__()
    if not isinstance(path, str):
        raise LakePathError(f"a lake path is a string like '/raw/x.csv', got {type(path).__name__}")
    if "://" in path:
        raise LakePathError(
            f"{path!r} is a URL; lake functions take lake paths like '/raw/x.csv' "
            "(lake.url(path) makes the URL)"
        )
    path = path.replace("\\", "/")
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise LakePathError(f"lake path {path!r} escapes the lake's root")
        elif part not in ("", "."):
            depth += 1
    normal = posixpath.normpath("/" + path.lstrip("/"))
    return "/" if normal in ("/", "//") else normal.replace("//", "/")


def relative(path: str) -> str:
    """The lake path without its leading ``/`` (``""`` for the root)."""
    return lake_path(path).lstrip("/")


def confined(root: str, file: str, path: str) -> str:
    """``file`` (under the local lake folder ``root``) if its real path stays in ``root``.

    Symbolic links inside the lake may point anywhere inside it; one that leads out of it
    (``/raw/etc -> /etc``) would let a lake path read or write any file of this machine.

    Parameters
    ----------
    root
        The lake's folder, already resolved (no symbolic links in it).
    file
        The file or folder a lake path names: ``root`` joined with the lake path.
    path
        The lake path, for the error message.

    Returns
    -------
    str
        ``file``, unchanged.

    Raises
    ------
    LakePathError
        The real path of ``file`` (symbolic links followed, as far as they exist) is outside
        ``root``.
    """
    real = os.path.realpath(file)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise LakePathError(
            f"lake path {lake_path(path)!r} leads out of the lake through a symbolic link "
            f"(to {real}; the lake is {root}); links in a local lake must point inside it: "
            "copy the data into the lake, or make the link's target part of the lake"
        )
    return file
