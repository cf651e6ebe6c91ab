"""The lake as one fsspec filesystem: lake paths in, lake paths out, no way out of the root.

:class:`RootedFileSystem` is what :meth:`azhpc.lake.Lake.filesystem` returns on every profile:
an fsspec ``DirFileSystem`` over this machine's file system (a folder) or over adlfs (a
container). It is the one place where lake paths are confined to the lake's root.

On a local folder it also keeps two promises blob storage keeps by itself: a file written to
the lake appears whole or not at all (it is written under a temporary name in its own folder,
then renamed into place; a failed write removes the temporary file), and no symbolic link
leads a lake path out of the lake.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec.callbacks import DEFAULT_CALLBACK, NoOpCallback
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileOpener, LocalFileSystem
from fsspec.spec import AbstractFileSystem

from azhpc.lake.paths import confined, relative

if TYPE_CHECKING:
    from azhpc.lake.lake import Lake

__all__ = ["RootedFileSystem", "rooted_filesystem"]

log = logging.getLogger("azhpc.lake")


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` would, for all threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new file next to ``path`` (same folder, so renaming it onto ``path`` is atomic)."""
    folder, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=folder or ".")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's 0600
    except OSError:
        pass
    return fd, temporary


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _publish(temporary: str, path: str, *, exclusive: bool = False) -> None:
    """Rename a finished temporary file onto ``path`` (refusing an existing one if
    ``exclusive``); the temporary file is gone afterwards either way."""
    try:
        if exclusive:
            os.link(temporary, path)  # fails with FileExistsError, as open(path, "x") would
            os.unlink(temporary)
        else:
            os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


@contextlib.contextmanager
def _atomic_target(path: str) -> Iterator[str]:
    """A temporary path to write in full, renamed onto ``path`` only if the block succeeds."""
    fd, temporary = _temporary_beside(path)
    os.close(fd)
    try:
        yield temporary
    except BaseException:
        _remove(temporary)
        raise
    _publish(temporary, path)


class _AtomicLocalFile(LocalFileOpener):
    """A local file opened for writing: written under a temporary name beside it, renamed into
    place when closed after a successful write; removed instead when a write failed (a full
    disk, a file size limit) or the ``with`` block raised."""

    temp: str | None = None
    _raw: Any = None
    _finished = True  # until _open succeeds: closing a file never opened does nothing
    _failed = False

    def _open(self) -> None:
        if not self._finished:
            return
        from fsspec.compression import compr

        if "x" in self.mode and os.path.lexists(self.path):  # as open(path, "x") would, at once
            raise FileExistsError(f"file exists: {self.path}")
        fd, self.temp = _temporary_beside(self.path)
        self._raw = os.fdopen(fd, self.mode.replace("x", "w"))
        self.f = (
            compr[self.compression](self._raw, mode=self.mode) if self.compression else self._raw
        )
        self._finished = False

    def write(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.f.write(*args, **kwargs)
        except BaseException:
            self._failed = True
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            self.f.close()
            if self._raw is not self.f:
                self._raw.close()  # a compression wrapper leaves the file it wraps open
        except BaseException:
            self.discard()
            raise
        if self._failed:
            self.discard()  # what was written is incomplete: nothing is published
        elif self.autocommit:
            _publish(self.temp, self.path, exclusive="x" in self.mode)

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self._failed = True
        self.close()

    def commit(self) -> None:
        if self.autocommit:
            raise RuntimeError("Can only commit if not already set to autocommit")
        self.close()
        if not self._failed and self.temp is not None:
            _publish(self.temp, self.path, exclusive="x" in self.mode)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._raw.close()
        if self.temp is not None:
            _remove(self.temp)

    @property
    def closed(self) -> bool:  # type: ignore[override]
        return self._finished


class _AtomicTextFile(io.TextIOWrapper):
    """Text over an :class:`_AtomicLocalFile`: a ``with`` block that raises publishes nothing."""

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.buffer._failed = True
        super().__exit__(exc_type, *rest)


class _LakeLocalFileSystem(LocalFileSystem):
    """This machine's file system under a local lake folder.

    - Writes (``open`` for ``w``/``x``, ``pipe_file``, ``put_file``, ``cp_file``) are atomic:
      a temporary file beside the target, renamed into place once complete, removed on failure.
    - Listings (``ls``, hence ``find``, ``walk``, ``glob``, ``du``) leave out symbolic links
      that lead out of the lake folder.
    - ``put_file``/``get_file`` report bytes to a callback (fsspec's local copies ignore it,
      as they use ``shutil``).
    """

    def __init__(self, lake_root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lake_root = lake_root

    def open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        if "b" in mode or ("w" not in mode and "x" not in mode):
            return super().open(path, mode, **kwargs)
        text = {k: kwargs.pop(k) for k in ("encoding", "errors", "newline") if k in kwargs}
        binary = super().open(path, mode.replace("t", "") + "b", **kwargs)
        if isinstance(binary, _AtomicLocalFile):
            return _AtomicTextFile(binary, **text)
        return io.TextIOWrapper(binary, **text)  # compressed, say: fsspec's own wrapper

    def _open(self, path: Any, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> Any:
        if "w" not in mode and "x" not in mode:
            return super()._open(path, mode, block_size=block_size, **kwargs)
        path = self._strip_protocol(path)
        if self.auto_mkdir:
            self.makedirs(self._parent(path), exist_ok=True)
        return _AtomicLocalFile(path, mode, fs=self, **kwargs)

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if not self.isfile(path1):
            return super().cp_file(path1, path2, **kwargs)  # a folder, or not there
        if self.auto_mkdir:
            self.makedirs(self._parent(path2), exist_ok=True)
        with _atomic_target(path2) as temporary:
            shutil.copyfile(path1, temporary)

    def put_file(self, lpath: Any, rpath: Any, callback: Any = DEFAULT_CALLBACK, **kw: Any) -> Any:
        if callback is None or isinstance(callback, NoOpCallback):
            return super().put_file(lpath, rpath, **kw)
        return AbstractFileSystem.put_file(self, lpath, rpath, callback=callback, **kw)

    def get_file(self, rpath: Any, lpath: Any, callback: Any = DEFAULT_CALLBACK, **kw: Any) -> Any:
        if callback is None or isinstance(callback, NoOpCallback):
            return super().get_file(rpath, lpath, **kw)
        return AbstractFileSystem.get_file(self, rpath, lpath, callback=callback, **kw)

    def ls(self, path: Any, detail: bool = False, **kwargs: Any) -> list[Any]:
        entries = super().ls(path, detail=True, **kwargs)
        kept = []
        for entry in entries:
            if entry.get("islink"):
                try:
                    confined(self.lake_root, entry["name"], "/")
                except ValueError:
                    log.warning("left out of the listing: %s, a symbolic link out of the lake",
                                entry["name"])  # fmt: skip
                    continue
            kept.append(entry)
        return kept if detail else [entry["name"] for entry in kept]


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
            root = Path(root).expanduser().resolve()
            fs = _LakeLocalFileSystem(os.fspath(root), auto_mkdir=True)
        super().__init__(path=os.fspath(root), fs=fs, **kwargs)
        self._real_root = os.path.realpath(self.path) if self.is_local else None

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
            joined = super()._join(relative(os.fspath(path)))
            if self._real_root is not None:
                confined(self._real_root, joined, os.fspath(path))
            return joined
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
