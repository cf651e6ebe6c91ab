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
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from azhpc.session import Session

__all__ = [
    "SAMPLES",
    "FsspecLake",
    "LakeFileSystem",
    "LocalLake",
    "default_lake_root",
    "install_samples",
    "local_path",
    "resolve_lake",
]

#: The sample files shipped with azhpc (ADLA's ``/Samples/Data``).
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "usql"


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


def default_lake_root() -> str:
    """The local profile's lake folder: ``$AZHPC_LAKE_ROOT`` or ``~/.azhpc/lake``."""
    root = os.environ.get("AZHPC_LAKE_ROOT")
    if not root:
        try:
            from azhpc.config import DEFAULT_LAKE_ROOT as root
        except ImportError:  # pragma: no cover - config is optional in older installs
            root = "~/.azhpc/lake"
    return str(Path(root).expanduser())


class FsspecLake:
    """A session :class:`~azhpc.lake.Lake` (Azurite, ADLS) seen as a :class:`LakeFileSystem`."""

    def __init__(self, lake: Any) -> None:
        self.lake = lake
        self.fs = lake.filesystem()

    def __repr__(self) -> str:
        return f"FsspecLake({self.lake!r})"

    def _lake_path(self, fs_path: str) -> str:
        prefix = self.lake.fs_path("/").rstrip("/")
        name = fs_path[len(prefix) :] if prefix and fs_path.startswith(prefix) else fs_path
        return "/" + name.lstrip("/")

    def open(self, path: str, mode: str = "rb") -> Any:
        return self.fs.open(self.lake.fs_path(path), mode)

    def glob(self, pattern: str) -> list[str]:
        found = self.fs.glob(self.lake.fs_path(pattern))
        return sorted(self._lake_path(p) for p in found if self.fs.isfile(p))

    def exists(self, path: str) -> bool:
        return bool(self.fs.isfile(self.lake.fs_path(path)))

    def mv(self, source: str, destination: str) -> None:
        target = self.lake.fs_path(destination)
        if self.fs.exists(target):
            self.fs.rm(target)
        self.fs.mv(self.lake.fs_path(source), target)

    def rm(self, path: str) -> None:
        target = self.lake.fs_path(path)
        if self.fs.exists(target):
            self.fs.rm(target)


def resolve_lake(session: Session | None = None) -> LakeFileSystem:
    """The lake U-SQL paths resolve in for ``session``.

    A session whose profile has a local lake folder gives a :class:`LocalLake` on that folder;
    an Azurite/ADLS lake is used through its fsspec filesystem. A session without a lake (or
    no session) falls back to ``LocalLake(default_lake_root())``.
    """
    lake = getattr(session, "lake", None)
    if lake is None:
        return LocalLake(default_lake_root())
    if isinstance(lake, LakeFileSystem) and not hasattr(lake, "filesystem"):
        return lake
    if getattr(lake, "is_local", False):
        return LocalLake(lake.root)
    if hasattr(lake, "filesystem") and hasattr(lake, "fs_path"):
        return FsspecLake(lake)
    return LocalLake(default_lake_root())


def install_samples(
    lake: LakeFileSystem | str | os.PathLike[str] | None = None,
    *,
    pool: Session | None = None,
    target: str = "/Samples/Data",
) -> list[str]:
    """Copy azhpc's U-SQL sample files into a lake under ``/Samples/Data`` (ADLA's layout).

    Parameters
    ----------
    lake : LakeFileSystem, str or Path, optional
        The lake (a folder means ``LocalLake(folder)``); default: the session's lake.
    pool : Session, optional
        The session whose lake to use when ``lake`` is not given (default: the default one).
    target : str
        The lake folder to copy into.

    Returns
    -------
    list of str
        The lake paths written (``/Samples/Data/SearchLog.tsv``, ``/Samples/Data/Tweets/...``).
    """
    if lake is None:
        from azhpc.session import current_session

        lake = resolve_lake(current_session(pool))
    elif isinstance(lake, (str, os.PathLike)):
        lake = LocalLake(lake)
    written = []
    for source in sorted(SAMPLES.rglob("*")):
        if not source.is_file():
            continue
        path = f"{target.rstrip('/')}/{source.relative_to(SAMPLES).as_posix()}"
        with open(source, "rb") as reader, lake.open(path, "wb") as sink:
            sink.write(reader.read())
        written.append(path)
    return written
