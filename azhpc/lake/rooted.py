"""The lake as one fsspec filesystem: lake paths in, lake paths out, no way out of the root.

:class:`RootedFileSystem` is what :meth:`azhpc.lake.Lake.filesystem` returns on every profile:
an fsspec ``DirFileSystem`` over this machine's file system (a folder) or over adlfs (a
container). It is the one place where lake paths are confined to the lake's root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec.callbacks import DEFAULT_CALLBACK, NoOpCallback
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from azhpc.lake.paths import relative

if TYPE_CHECKING:
    from azhpc.lake.lake import Lake

__all__ = ["RootedFileSystem", "rooted_filesystem"]


class _CountingLocalFileSystem(LocalFileSystem):
    """``LocalFileSystem`` whose ``put_file``/``get_file`` report bytes to a callback.

    fsspec's local copies ignore the callback (they use ``shutil``); with a real callback these
    use fsspec's own chunked copy, which reports each chunk.
    """

    def put_file(self, lpath: Any, rpath: Any, callback: Any = DEFAULT_CALLBACK, **kw: Any) -> Any:
        if callback is None or isinstance(callback, NoOpCallback):
            return super().put_file(lpath, rpath, **kw)
        return AbstractFileSystem.put_file(self, lpath, rpath, callback=callback, **kw)

    def get_file(self, rpath: Any, lpath: Any, callback: Any = DEFAULT_CALLBACK, **kw: Any) -> Any:
        if callback is None or isinstance(callback, NoOpCallback):
            return super().get_file(rpath, lpath, **kw)
        return AbstractFileSystem.get_file(self, rpath, lpath, callback=callback, **kw)


class RootedFileSystem(DirFileSystem):
    """An fsspec filesystem rooted at a lake: ``/raw/x.csv`` means ``<root>/raw/x.csv``.

    Every path it takes is a lake path (``/raw/x.csv``, ``raw/x.csv`` and ``/raw/./x.csv``
    are the same file); ``..`` above the root, or a URL, raises
    :class:`~azhpc.lake.LakePathError`. Every path it gives back (``ls``, ``glob``, ``find``,
    ``walk``, ``info``) is a lake path too.

    Parameters
    ----------
    root
        The lake's root on ``fs``: a folder on this machine, or a container (adlfs).
    fs
        The filesystem holding the lake; by default this machine's, with folders made on
        write and byte progress on ``put``/``get``. The wrapped filesystem stays reachable as
        :attr:`fs` (adlfs's ``service_client``, for instance).

    Examples
    --------
    >>> fs = RootedFileSystem("/tmp/lake")  # doctest: +SKIP
    >>> fs.pipe_file("/raw/x.csv", b"a,b\\n")  # doctest: +SKIP
    >>> fs.ls("/raw", detail=False)  # doctest: +SKIP
    ['/raw/x.csv']
    """

    def __init__(
        self, root: str | os.PathLike[str], fs: AbstractFileSystem | None = None, **kwargs: Any
    ) -> None:
        if fs is None:
            fs = _CountingLocalFileSystem(auto_mkdir=True)
            root = Path(root).expanduser().resolve()
        super().__init__(path=os.fspath(root), fs=fs, **kwargs)

    def __repr__(self) -> str:
        return f"<RootedFileSystem {type(self.fs).__name__} root={self.path!r}>"

    @property
    def is_local(self) -> bool:
        """Whether the lake is a folder on this machine."""
        return isinstance(self.fs, LocalFileSystem)

    def local_path(self, path: str) -> str | None:
        """The file on this machine that holds lake path ``path``; ``None`` if not local.

        Raises
        ------
        LakePathError
            The path escapes the root or is a URL.
        """
        joined = self._join(path)
        return joined if self.is_local else None

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget cached listings: of ``path`` and its parents, or all of them."""
        if path is None:
            self.fs.invalidate_cache()  # a cache only: forgetting beyond the root is harmless
        else:
            super().invalidate_cache(path)

    def _join(self, path: Any) -> Any:
        if isinstance(path, str | os.PathLike):
            return super()._join(relative(os.fspath(path)))
        return super()._join(path)

    def _relpath(self, path: Any) -> Any:
        if isinstance(path, str):
            return "/" + super()._relpath(path).strip("/")
        return super()._relpath(path)


def rooted_filesystem(lake: Lake | RootedFileSystem | str | os.PathLike[str]) -> RootedFileSystem:
    """The rooted filesystem of a :class:`~azhpc.lake.Lake`, a rooted filesystem, or a folder.

    Parameters
    ----------
    lake
        A lake (its :meth:`~azhpc.lake.Lake.filesystem`), a :class:`RootedFileSystem` (itself),
        or a folder on this machine (the lake rooted there).

    Returns
    -------
    RootedFileSystem

    Raises
    ------
    TypeError
        ``lake`` is none of those.
    """
    if isinstance(lake, RootedFileSystem):
        return lake
    if isinstance(lake, str | os.PathLike):
        return RootedFileSystem(lake)
    filesystem = getattr(lake, "filesystem", None)
    if callable(filesystem):
        found = filesystem()
        if isinstance(found, RootedFileSystem):
            return found
    raise TypeError(
        "a lake is an azhpc.lake.Lake, an azhpc.lake.RootedFileSystem or a local folder; "
        f"got {type(lake).__name__}"
    )
