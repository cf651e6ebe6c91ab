"""Serialized payloads: what travels between the client and the workers.

A :class:`Payload` is a pickle stream (protocol 5) plus its out-of-band buffers. Large numpy
arrays and the columns of pandas frames travel as out-of-band buffers, so a backend can place
them where they are cheapest to move (the local backend maps them from shared memory without a
copy; a storage-staged backend writes them to one blob) while the small pickle stream carries
the structure. Functions are serialized with cloudpickle, so lambdas, closures and functions
defined in a notebook travel by value.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cloudpickle

from azhpc.core.pickling import dumps
from azhpc.errors import SerializationError
from azhpc.version import PACKAGE_FOLDER

__all__ = ["Payload", "decode", "encode"]


@dataclass(frozen=True, eq=False)
class Payload:
    """A pickle stream and its out-of-band buffers.

    Attributes
    ----------
    data
        The pickle stream.
    buffers
        Out-of-band buffers, in the order the stream refers to them.
    """

    data: bytes
    buffers: tuple[memoryview, ...] = ()

    @property
    def nbytes(self) -> int:
        """Total size of the stream and the buffers, in bytes."""
        return len(self.data) + sum(b.nbytes for b in self.buffers)

    @property
    def buffer_bytes(self) -> int:
        """Total size of the out-of-band buffers, in bytes."""
        return sum(b.nbytes for b in self.buffers)

    def digest(self) -> str:
        """Content hash (SHA-256, hex) of the stream and the buffers."""
        h = hashlib.sha256(self.data)
        for buf in self.buffers:
            h.update(len(buf).to_bytes(8, "little"))
            h.update(buf)
        return h.hexdigest()


def encode(obj: Any, *, what: str = "object", out_of_band: bool = True) -> Payload:
    """Serialize ``obj`` with cloudpickle.

    Parameters
    ----------
    obj
        Anything cloudpickle can serialize.
    what
        How to name ``obj`` in an error message (``"the function"``, ``"task 3's input"``).
    out_of_band
        Keep large buffers (numpy arrays, frame columns) out of the stream.

    Raises
    ------
    SerializationError
        ``obj`` (or something it refers to) cannot be pickled.
    """
    buffers: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw())

    try:
        data = dumps(obj, buffer_callback=keep if out_of_band else None)
    except Exception as exc:
        raise SerializationError(
            f"{what} ({type(obj).__module__}.{type(obj).__qualname__}) cannot be sent to the "
            f"workers: {type(exc).__name__}: {exc}. Build such objects (open files, locks, "
            "connections, generators) inside the function that runs on the worker instead."
        ) from exc
    return Payload(data, tuple(buffers))


def decode(payload: Payload | bytes, buffers: Sequence[Any] = ()) -> Any:
    """Rebuild the object a :func:`encode` call serialized."""
    if isinstance(payload, Payload):
        return pickle.loads(payload.data, buffers=payload.buffers)
    return pickle.loads(payload, buffers=buffers)


# -- one file per payload -----------------------------------------------------------------------
#
# Layout: MAGIC, then a little-endian header (stream length, buffer count, and each buffer's
# offset and length), the stream, then each buffer at a 64-byte aligned offset so that numpy
# arrays mapped from the file are aligned. Reading maps the file: buffers are views of the
# mapping, not copies.

MAGIC = b"AZHPCPL1"
_ALIGN = 64


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _layout(payload: Payload) -> tuple[bytes, list[tuple[int, int]], int]:
    import struct

    header_len = len(MAGIC) + 16 + 16 * len(payload.buffers)
    offset = _aligned(header_len + len(payload.data))
    layout = []
    for buf in payload.buffers:
        layout.append((offset, buf.nbytes))
        offset = _aligned(offset + buf.nbytes)
    header = MAGIC + struct.pack("<QQ", len(payload.data), len(payload.buffers))
    header += b"".join(struct.pack("<QQ", off, n) for off, n in layout)
    return header, layout, offset


def write_payload_file(path: str, payload: Payload) -> int:
    """Write ``payload`` to ``path`` in the payload file layout; return the bytes written."""
    header, layout, end = _layout(payload)
    with open(path, "wb") as f:
        f.write(header)
        f.write(payload.data)
        for (off, _), buf in zip(layout, payload.buffers, strict=True):
            f.seek(off)
            f.write(buf)
        f.truncate(end)
    return end


def payload_to_bytes(payload: Payload) -> bytes:
    """``payload`` in the payload file layout, as one bytes object (for object storage)."""
    header, layout, end = _layout(payload)
    out = bytearray(end)
    out[: len(header)] = header
    out[len(header) : len(header) + len(payload.data)] = payload.data
    for (off, n), buf in zip(layout, payload.buffers, strict=True):
        out[off : off + n] = buf  # PickleBuffer.raw(): always flat bytes
    return bytes(out)


def _parse_payload(view: memoryview, what: str) -> Payload:
    """Read the payload layout from ``view``; buffers are views of it, not copies."""
    import struct

    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise SerializationError(f"{what} is not an azhpc payload (it may be damaged)")
    pos = len(MAGIC)
    data_len, count = struct.unpack_from("<QQ", view, pos)
    pos += 16
    layout = [struct.unpack_from("<QQ", view, pos + 16 * i) for i in range(count)]
    pos += 16 * count
    end = max([pos + data_len] + [off + n for off, n in layout])
    if end > len(view):
        raise SerializationError(f"{what} is truncated ({len(view)} of {end} bytes)")
    return Payload(bytes(view[pos : pos + data_len]), tuple(view[o : o + n] for o, n in layout))


def payload_from_bytes(data: bytes | bytearray | memoryview, *, what: str = "payload") -> Payload:
    """Rebuild a payload from :func:`payload_to_bytes` output; its buffers are writable."""
    return _parse_payload(memoryview(bytearray(data)), what)


def read_payload_file(path: str) -> Payload:
    """Map a payload file written by :func:`write_payload_file`.

    The buffers are copy-on-write views of the mapping: the objects rebuilt from them are
    writable, and writing to them never changes the file. The mapping lives as long as any
    object built from it, so the file may be deleted as soon as this returns.
    """
    import mmap

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise SerializationError(f"payload file {path} is empty (it was not written whole)")
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    return _parse_payload(memoryview(mapped), f"payload file {path}")


def _installed_roots() -> tuple[str, ...]:
    import os
    import sysconfig

    roots = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    roots.add(PACKAGE_FOLDER)
    return tuple(os.path.abspath(r) + os.sep for r in roots if r)


def local_modules() -> list[str]:
    """Names of imported modules that live in the user's own files (not the standard library,
    not an installed package, not azhpc): a remote node cannot import them."""
    import os

    roots = _installed_roots()
    names = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name == "__main__" or name.startswith("azhpc"):
            continue
        if not os.path.abspath(path).startswith(roots):
            names.append(name)
    return names


@contextlib.contextmanager
def local_modules_by_value() -> Iterator[None]:
    """While active, functions and classes of the user's own modules are pickled with their
    code (``cloudpickle.register_pickle_by_value``), as ``__main__``'s always are: for nodes
    that do not have the user's files (Batch)."""
    registered = []
    already = set(cloudpickle.list_registry_pickle_by_value())  # the user's own: left alone
    for name in local_modules():
        module = sys.modules.get(name)
        if module is None or name in already:
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:  # already registered, or not a proper module
            continue
        registered.append(module)
    try:
        yield
    finally:
        for module in registered:
            try:
                cloudpickle.unregister_pickle_by_value(module)
            except ValueError:
                pass
