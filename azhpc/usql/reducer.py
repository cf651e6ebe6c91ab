"""``Extension.Python.Reducer``: a script's ``usqlml_main(df)`` called once per group.

:class:`PythonReducer` is the per-group callable. It is a module-level frozen dataclass holding
only strings, so it pickles with pickle or cloudpickle and can run in worker processes or on
Batch nodes: each process compiles the script once (cached by content hash). The script is
compiled under the U-SQL script's name with its lines where they are in the script, so a
traceback points at the script line. Failures raise :class:`ReducerFailure`, which carries only
strings (picklable) — the remote traceback, or the PRODUCE mismatch listing both column sets.

``run_groups(reducer, frames) -> frames`` is the seam for spreading groups over processes: the
default, :func:`run_groups_in_process`, is a plain loop.
"""

from __future__ import annotations

import hashlib
import linecache
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PythonReducer", "ReduceBatch", "ReducerFailure", "RunGroups", "run_groups_in_process"]

#: The signature of the hook that runs the reducer over the groups.
RunGroups = Callable[[Callable[["pd.DataFrame"], "pd.DataFrame"], list["pd.DataFrame"]], list]

_NAMESPACES: dict[str, dict[str, Any]] = {}


class ReducerFailure(Exception):
    """The Python reducer failed.

    ``args`` is ``(kind, message, traceback_text)`` where ``kind`` is ``"exception"`` or
    ``"produce"``; all strings, so the exception survives pickling between processes.
    """

    @property
    def kind(self) -> str:
        return str(self.args[0])

    @property
    def message(self) -> str:
        return str(self.args[1])

    @property
    def traceback_text(self) -> str:
        return str(self.args[2]) if len(self.args) > 2 else ""


def run_groups_in_process(
    reducer: Callable[[pd.DataFrame], pd.DataFrame], frames: list[pd.DataFrame]
) -> list[pd.DataFrame]:
    """The default ``run_groups``: call the reducer on each group, in this process, in order."""
    return [reducer(frame) for frame in frames]


@dataclass(frozen=True)
class PythonReducer:
    """Calls ``usqlml_main`` of ``script`` on one group's DataFrame and checks the result.

    Parameters
    ----------
    script : str
        The Python source (the value of ``pyScript``).
    filename : str
        Name to compile it under (the U-SQL script's name, for tracebacks).
    first_line : int
        The U-SQL script line the Python source starts on (0 when unknown).
    produce : tuple of str
        The PRODUCE column names the returned frame must have.
    """

    script: str
    filename: str
    first_line: int
    produce: tuple[str, ...]

    def namespace(self) -> dict[str, Any]:
        key = hashlib.sha256(
            f"{self.filename}\0{self.first_line}\0{self.script}".encode()
        ).hexdigest()
        found = _NAMESPACES.get(key)
        if found is not None:
            return found
        padded = "\n" * max(self.first_line - 1, 0) + self.script
        if self.filename.startswith("<"):
            linecache.cache[self.filename] = (
                len(padded),
                None,
                padded.splitlines(True),
                self.filename,
            )
        else:
            _remember_source(self.filename, padded)
        namespace: dict[str, Any] = {"__name__": "usql_pyscript"}
        try:
            code = compile(padded, self.filename, "exec")
            exec(code, namespace)  # the pyScript is the user's own program, run on purpose
        except BaseException as exc:
            raise ReducerFailure("exception", _describe(exc), _format(exc)) from None
        if not callable(namespace.get("usqlml_main")):
            raise ReducerFailure(
                "exception", "the pyScript does not define a function usqlml_main(df)", ""
            )
        _NAMESPACES[key] = namespace
        return namespace

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        main = self.namespace()["usqlml_main"]
        try:
            result = main(frame)
        except BaseException as exc:
            raise ReducerFailure("exception", _describe(exc), _format(exc)) from None
        if not isinstance(result, pd.DataFrame):
            raise ReducerFailure(
                "produce",
                f"usqlml_main must return a pandas DataFrame, not {type(result).__name__}",
                "",
            )
        columns = list(result.columns)
        if columns == list(self.produce) and result is not frame:
            index = result.index
            if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
                return result  # already in PRODUCE order with a fresh index: no copy
        names = [str(c) for c in columns]
        if sorted(names) != sorted(self.produce) or len(set(names)) != len(names):
            raise ReducerFailure(
                "produce",
                "the DataFrame returned by usqlml_main has columns "
                f"[{', '.join(names)}] but PRODUCE declares [{', '.join(self.produce)}]",
                "",
            )
        result = result.copy() if result is frame else result
        result.columns = names
        return result[list(self.produce)].reset_index(drop=True)


def _remember_source(filename: str, padded: str) -> None:
    lines = padded.splitlines(True)
    existing = linecache.cache.get(filename)
    if existing and len(existing[2]) > len(lines):  # keep the longer text for shared names
        merged = list(existing[2])
        for i, line in enumerate(lines):
            if line.strip():
                merged[i] = line
        lines = merged
    linecache.cache[filename] = (len(padded), None, lines, filename)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _format(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not f.filename.endswith(("reducer.py",))]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(user)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


@dataclass(frozen=True)
class ReduceBatch:
    """A task's share of a REDUCE: run ``reducer`` on a run of groups of one sorted frame.

    Called as ``batch(frame, bounds)`` where ``frame`` is the sorted input (staged once for
    the whole job) and ``bounds`` is ``(starts, ends)``: the rows of each group of this task.
    Returns the concatenated results of the groups, in group order (one frame, so one
    result travels back per task).
    """

    reducer: Callable[[pd.DataFrame], pd.DataFrame]

    def __call__(self, frame: pd.DataFrame, bounds: tuple[Any, Any]) -> pd.DataFrame:
        import pandas as pd

        starts, ends = bounds
        results = [
            self.reducer(frame.iloc[int(start) : int(end)].reset_index(drop=True))
            for start, end in zip(starts, ends, strict=True)
        ]
        if len(results) == 1:
            return results[0]
        return pd.concat(results, ignore_index=True)
