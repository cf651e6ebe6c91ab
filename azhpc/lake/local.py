"""The ``local`` profile's lake: a folder, seen through fsspec, that paths cannot escape."""

from __future__ import annotations

from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK, NoOpCallback
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from azhpc.lake.paths import relative

__all__ = ["LocalLakeFileSystem"]


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


class LocalLakeFileSystem(DirFileSystem):
    """A folder as a lake: ``/raw/x.csv`` means ``<root>/raw/x.csv``; ``..`` cannot climb out.

    Parameters
    ----------
    root
        The folder holding the lake (created on first write).
    """

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(path=root, fs=_CountingLocalFileSystem(auto_mkdir=True), **kwargs)

    def _join(self, path: Any) -> Any:
        if isinstance(path, str):
            return super()._join(relative(path))
        return super()._join(path)
