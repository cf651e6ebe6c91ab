"""cloudpickle, keeping the source file names of functions sent by value.

cloudpickle 3.1.3 and later write every code object it pickles by value with the file name
``<dynamic-code>`` (to make payloads independent of where a function was defined). On a worker,
a traceback through such a function then names no file and shows no source line, and the
source that ``%%azrun`` registers for a cell under the cell's name is never found. azhpc's
pickler puts the original name back: each code object travels as cloudpickle pickles it, plus
its file name, and is renamed when it is rebuilt. With older cloudpickle versions, which keep
the name themselves, this changes nothing.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = ["PROTOCOL", "dumps"]

#: The pickle protocol of every azhpc payload (out-of-band buffers need 5).
PROTOCOL = 5

#: The name cloudpickle >= 3.1.3 gives code it pickles by value.
_UNNAMED = "<dynamic-code>"


def dumps(
    obj: Any, *, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None
) -> bytes:
    """``cloudpickle.dumps(obj, protocol=5)``, with the file names of code kept.

    Parameters
    ----------
    obj
        Anything cloudpickle can serialize.
    buffer_callback
        Receives the out-of-band buffers (see :mod:`pickle`); ``None`` keeps them in the stream.
    """
    with io.BytesIO() as file:
        _NamedCodePickler(file, protocol=PROTOCOL, buffer_callback=buffer_callback).dump(obj)
        return file.getvalue()


#: Open files of the file system. cloudpickle would send a copy of a text file open for
#: reading (its contents, as a StringIO): the worker would read a snapshot, and writes would
#: go nowhere. azhpc refuses them all.
_FILE_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)


def _refuse_file(obj: Any) -> None:
    name = getattr(obj, "name", "?")
    mode = getattr(obj, "mode", "?")
    raise pickle.PicklingError(
        f"an open file ({name!r}, mode {mode!r}) cannot be sent to or from a worker; pass "
        "its path (or a lake URL, on a pool) instead and open it inside the function"
    )


class _NamedCodePickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _FILE_TYPES) and not _is_standard_stream(obj):
            _refuse_file(obj)
        if type(obj) is types.CodeType and obj.co_filename != _UNNAMED:
            # The renamed copy goes through cloudpickle's own code reducer (it is _UNNAMED,
            # so it does not come back here); nested code objects in its constants do.
            return _renamed, (obj.replace(co_filename=_UNNAMED), obj.co_filename)
        return super().reducer_override(obj)


def _is_standard_stream(obj: Any) -> bool:
    """sys.stdout and sys.stderr travel as the worker's own (cloudpickle's rule)."""
    return any(obj is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    return code.replace(co_filename=filename)
