"""What a ``%%azrun`` task runs on a worker: the cell's source in a fresh namespace.

:class:`CellRunner` lives in an importable module so that workers unpickle it by reference;
it carries the cell's source and the shipped variables (each pickled on its own, once, by the
client). On the worker, the cell's source is registered in :mod:`linecache` under the cell's
file name, so a remote traceback shows the cell's own lines with their line numbers.

This module imports neither IPython nor pandas: workers load it for every ``%%azrun`` task.
"""

from __future__ import annotations

import ast
import builtins
import linecache
import pickle
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from azhpc.core.outcome import hide_traceback_frames
from azhpc.core.pickling import dumps
from azhpc.errors import UnpicklableVariableError

__all__ = ["CellResult", "CellRunner", "register_source"]

# Remote tracebacks start at the cell, not at this runner.
hide_traceback_frames(__file__)

#: The hidden name the cell's last expression value is assigned to.
_LAST = "__azrun_last_value__"


@dataclass(frozen=True)
class CellResult:
    """What one run of a cell produced.

    Attributes
    ----------
    value
        The value of the cell's last expression (``None`` when it does not end with one).
    variables
        The variables pulled back, by name (those the run did not define are absent).
    """

    value: Any = None
    variables: dict[str, Any] = field(default_factory=dict)


def register_source(filename: str, source: str) -> None:
    """Put ``source`` in :mod:`linecache` under ``filename`` so tracebacks can show its lines."""
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # An mtime of None keeps linecache.checkcache() from dropping the entry.
    linecache.cache[filename] = (len(source), None, lines, filename)


def compile_cell(source: str, filename: str) -> Any:
    """Compile a cell so that its last expression's value lands in a hidden variable."""
    tree = ast.parse(source, filename=filename, mode="exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        assign = ast.Assign(targets=[ast.Name(_LAST, ast.Store())], value=last.value)
        tree.body[-1] = ast.copy_location(assign, last)
        ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec")


@dataclass(frozen=True)
class CellRunner:
    """Run a cell once per task input (or once per item of it), in a fresh namespace.

    Parameters
    ----------
    source
        The cell's Python source.
    filename
        The name tracebacks give the cell (``"<azrun In[3] 1a2b3c4d>"``).
    variables
        The shipped variables: name to its cloudpickle bytes.
    bind
        The name each input is bound to (``--map NAME``, ``--scatter DF``), or ``None``.
    pull
        The variables to send back after the run.
    each
        The task input is a chunk of items; run the cell once per item and return the list.
    strict
        A pulled variable that cannot be pickled fails the task (``--out`` names); else it
        is left behind with a warning (the names a plain cell assigns, such as an open file).
    """

    source: str
    filename: str
    variables: Mapping[str, bytes]
    bind: str | None = None
    pull: Sequence[str] = ()
    each: bool = False
    strict: bool = True

    def __call__(self, task_input: Any) -> CellResult | list[CellResult]:
        register_source(self.filename, self.source)
        code = compile_cell(self.source, self.filename)
        shipped = {name: pickle.loads(data) for name, data in self.variables.items()}
        if self.each:
            return [self._run(code, shipped, item) for item in task_input]
        return self._run(code, shipped, task_input)

    def _run(self, code: Any, shipped: dict[str, Any], task_input: Any) -> CellResult:
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        namespace.update(shipped)
        if self.bind is not None:
            namespace[self.bind] = task_input
        try:
            exec(code, namespace)  # the user's own cell, run as the notebook would run it
        except Exception as exc:
            if self.each and self.bind is not None:
                exc.add_note(f"(in the run with {self.bind} = {_short_repr(task_input)})")
            raise
        value = namespace.pop(_LAST, None)
        pulled = {}
        for name in self.pull:
            if name in namespace and self._sendable(name, namespace[name]):
                pulled[name] = namespace[name]
        return CellResult(value, pulled)

    def _sendable(self, name: str, value: Any) -> bool:
        """Whether ``value`` can travel back; raise (strict) or warn when it cannot."""
        if _always_picklable(value):
            return True

        try:
            dumps(value)
        except Exception as exc:
            kind = type(value)
            problem = (
                f"variable {name!r} ({kind.__module__}.{kind.__qualname__}) cannot be sent "
                f"back to the notebook: {type(exc).__name__}: {exc}"
            )
            if self.strict:
                raise UnpicklableVariableError(
                    f"{problem}. Bring back something that pickles (build the object in the "
                    "notebook from it).",
                    names=(name,),
                ) from None
            print(f"azhpc: {problem}; it stays on the worker.", file=sys.stderr)
            return False
        return True


_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_FRAMES = frozenset({("pandas", "DataFrame"), ("pandas", "Series"), ("pandas", "Index")})


def _always_picklable(value: Any) -> bool:
    """Values known to pickle, checked by type so that big ones are not pickled twice."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if (kind.__module__, kind.__name__) in _FRAMES:
        return True
    return kind.__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", "O") != "O"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
