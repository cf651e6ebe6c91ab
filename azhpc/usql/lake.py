"""The file system U-SQL scripts read and write: lake paths, resolved by an injectable object.

Script paths such as ``/Samples/Data/SearchLog.tsv`` are *lake paths*. The engine reaches files
only through an object with the :class:`LakeFileSystem` methods (the names fsspec uses), so
the same script runs against a local folder, Azurite or ADLS. :class:`LocalLake` is the
default: lake paths resolve under a local root folder.
"""

from __future__ import annotations

import glob as _glob
import os
import shutil
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

__all__ = ["LakeFileSystem", "LocalLake", "local_path"]


@runtime_checkable
class LakeFileSystem(Protocol):
    """What the U-SQL engine needs from a lake. Paths are lake paths (``/a/b.csv``).

    An implementation may also offer ``local_path(path) -> str | None`` returning a local file
    that holds the same bytes; the engine then reads that file directly instead of copying it.
    """

    def open(self, path: str, mode: str = "rb") -> IO:
        """Open a file (``"rb"`` or ``"wb"``); writing creates missing folders."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """Lake paths matching a glob pattern (``*`` within one folder level)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether a file exists."""
        ...

    def mv(self, source: str, destination: str) -> None:
        """Rename a file, replacing ``destination``."""
        ...

    def rm(self, path: str) -> None:
        """Delete a file."""
        ...


class LocalLake:
    """A lake in a local folder: lake path ``/x/y.csv`` is ``root/x/y.csv``.

    Parameters
    ----------
    root : str or Path
        The folder that plays the lake's root. Paths cannot escape it.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalLake({str(self.root)!r})"

    def real(self, path: str) -> Path:
        """The local path of a lake path."""
        relative = path.replace("\\", "/").lstrip("/")
        if relative.startswith(("adl://", "wasb://", "abfss://")):
            raise ValueError(f"{path!r} is a URL; on a local lake use a path like /folder/file")
        full = (self.root / relative).resolve()
        if full != self.root and self.root not in full.parents:
            raise ValueError(f"{path!r} is outside the lake root {self.root}")
        return full

    def lake_path(self, real: str | os.PathLike[str]) -> str:
        return "/" + Path(real).resolve().relative_to(self.root).as_posix()

    def local_path(self, path: str) -> str | None:
        return str(self.real(path))

    def open(self, path: str, mode: str = "rb") -> IO:
        real = self.real(path)
        if "w" in mode or "a" in mode:
            real.parent.mkdir(parents=True, exist_ok=True)
        return open(real, mode)

    def glob(self, pattern: str) -> list[str]:
        real = self.real(pattern) if "*" not in pattern.split("/")[0] else self.root
        hits = _glob.glob(str(real))
        return sorted(self.lake_path(h) for h in hits if os.path.isfile(h))

    def exists(self, path: str) -> bool:
        return self.real(path).is_file()

    def mv(self, source: str, destination: str) -> None:
        target = self.real(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.real(source), target)

    def rm(self, path: str) -> None:
        self.real(path).unlink(missing_ok=True)


def local_path(lake: LakeFileSystem, path: str, scratch: str) -> str:
    """A local file with the bytes of lake file ``path`` (copied into ``scratch`` if needed)."""
    finder = getattr(lake, "local_path", None)
    if finder is not None:
        found = finder(path)
        if found is not None:
            return str(found)
    target = os.path.join(scratch, f"{abs(hash(path))}_{os.path.basename(path)}")
    with lake.open(path, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return target
