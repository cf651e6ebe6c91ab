"""U-SQL for azhpc: run Azure Data Lake Analytics scripts (with Python reducers) locally.

The engine is a pipeline, one module per stage: :mod:`~azhpc.usql.tokens` (text to tokens
with positions), :mod:`~azhpc.usql.parser` (tokens to the :mod:`~azhpc.usql.nodes` tree),
:mod:`~azhpc.usql.binder` (names, C# types, checks), :mod:`~azhpc.usql.planner` (a DAG of
steps) and :mod:`~azhpc.usql.executor` (DuckDB, vectorised; Python reducers per group).
:func:`run` and :func:`submit` run a script as a :class:`UsqlJob` on a session (ADLA's job
states, REDUCE groups scattered over the pool, paths in the session's lake);
:mod:`~azhpc.usql.session_jobs` has the details.

>>> import azhpc.usql as usql
>>> compiled = usql.compile('@r = SELECT * FROM (VALUES (1)) AS T(a); OUTPUT @r TO "/o.csv" '
...                         'USING Outputters.Csv();')
>>> print(compiled.plan.describe())
[1] query @r
[2] output OUTPUT /o.csv <- rs1_r

Importing this package is cheap: DuckDB and pandas load when a script runs.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azhpc.usql.binder import bind
from azhpc.usql.errors import ErrorCode, UsqlError
from azhpc.usql.jobs import JobResult, JobState, StageEvent, StageProgress
from azhpc.usql.parser import parse
from azhpc.usql.planner import plan
from azhpc.usql.samples import install_samples
from azhpc.usql.session_jobs import StageStatus, UsqlJob, UsqlProgress, run, script_lake, submit

if TYPE_CHECKING:
    from azhpc.lake import Lake, RootedFileSystem
    from azhpc.usql.bound import BoundScript
    from azhpc.usql.executor import ExecutionResult
    from azhpc.usql.nodes import Script
    from azhpc.usql.planner import Plan
    from azhpc.usql.reducer import RunGroups

__all__ = [
    "CompiledScript",
    "ErrorCode",
    "JobResult",
    "JobState",
    "StageEvent",
    "StageProgress",
    "StageStatus",
    "UsqlError",
    "UsqlJob",
    "UsqlProgress",
    "compile",
    "execute",
    "install_samples",
    "run",
    "run_local",
    "script_lake",
    "submit",
]


@dataclass(frozen=True)
class CompiledScript:
    """A parsed, bound and planned script, ready for :func:`execute`."""

    name: str
    source: str
    script: Script
    bound: BoundScript
    plan: Plan


def compile(
    script: str,
    *,
    params: Mapping[str, object] | None = None,
    name: str = "script.usql",
    keep: Iterable[str] = (),
    now: _dt.datetime | None = None,
) -> CompiledScript:
    """Parse, bind and plan a U-SQL script.

    Parameters
    ----------
    script : str
        The U-SQL text.
    params : mapping, optional
        Values for ``DECLARE EXTERNAL`` variables (names with or without ``@``); names the
        script does not declare become variables declared before it, as ADLA's job parameters.
    name : str
        The script's name in error messages.
    keep : iterable of str
        Rowsets to compute even when no OUTPUT reads them (for inspection).
    now : datetime, optional
        The value of ``DateTime.Now``.

    Returns
    -------
    CompiledScript

    Raises
    ------
    UsqlError
        With an ADLA-style code, the line and column, and the source line with a caret.
    """

    try:
        tree = parse(script, name)
        bound = bind(tree, dict(params or {}), now)
        return CompiledScript(name, script, tree, bound, plan(bound, keep))
    except RecursionError:
        # Expressions are refused at their limits with a position (parse_expr.MAX_NESTING,
        # MAX_DEPTH); this is the rest (subqueries in subqueries ...), without one.
        raise UsqlError(
            ErrorCode.NOT_SUPPORTED,
            "not supported: a script nested this deeply (queries inside queries, or "
            "expressions, hundreds of levels deep); split it into several statements",
            script=name,
        ) from None


def execute(
    compiled: CompiledScript,
    *,
    lake: Lake | RootedFileSystem | str | os.PathLike[str],
    run_groups: RunGroups | None = None,
    progress: StageProgress | bool | None = None,
    keep_connection: bool = False,
) -> ExecutionResult:
    """Run a compiled script against a lake.

    Parameters
    ----------
    compiled : CompiledScript
        From :func:`compile`.
    lake : Lake, RootedFileSystem, str or Path
        Where script paths resolve: a :class:`~azhpc.lake.Lake`, its
        :meth:`~azhpc.lake.Lake.filesystem`, or a local folder.
    run_groups : callable, optional
        ``run_groups(reducer, frames) -> list of frames``: how REDUCE groups are run. The
        reducer is picklable (cloudpickle or pickle); the default runs them in this process.
    progress : StageProgress or bool, optional
        Per-step callbacks.
    keep_connection : bool
        Keep rowsets available through :meth:`ExecutionResult.rowset`.

    Returns
    -------
    ExecutionResult

    Raises
    ------
    UsqlError
        On any run time failure (no OUTPUT file is written then).
    """
    from azhpc.lake.rooted import rooted_filesystem  # lazy: fsspec, only when files are touched
    from azhpc.usql.executor import execute_plan  # lazy: DuckDB, numpy, only when a script runs

    return execute_plan(
        compiled.plan,
        rooted_filesystem(lake),
        run_groups=run_groups,
        progress=progress,
        keep_connection=keep_connection,
    )


def run_local(
    script: str,
    *,
    lake_root: str | os.PathLike[str],
    params: Mapping[str, object] | None = None,
    run_groups: RunGroups | None = None,
    name: str = "script.usql",
    progress: StageProgress | bool | None = None,
    keep: Iterable[str] = (),
) -> ExecutionResult:
    """Compile and run a script with paths resolved under a local folder.

    Examples
    --------
    >>> import azhpc.usql as usql  # doctest: +SKIP
    >>> usql.run_local(text, lake_root="lake")  # doctest: +SKIP
    """
    keep = tuple(keep)
    compiled = compile(script, params=params, name=name, keep=keep)
    return execute(
        compiled,
        lake=lake_root,
        run_groups=run_groups,
        progress=progress,
        keep_connection=bool(keep),
    )
