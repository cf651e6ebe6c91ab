"""Run a notebook cell on the pool: the API behind ``%%azrun`` and ``%azrun``.

:func:`submit_cell` checks the cell's variables, builds one job and returns it; the magics
parse their flags and call :func:`run_cell`, which also waits, prints what the tasks printed
and puts the variables that come back into the notebook's namespace. Nothing here imports
IPython, so the same calls work on a plain ``dict`` namespace.

Three forms, one job each:

- plain: the cell runs once; the names it assigns come back; the value of its last
  expression is the result.
- ``map_name``/``items`` (``--map NAME in EXPR``): the cell runs once per item, ``NAME``
  bound to the item; the last expression's values come back as a list.
- ``scatter`` (``--scatter DF[:N] [--by COL]``): the cell runs once per partition of a
  DataFrame or array, bound under the same name; the ``out`` names (or the last expression's
  values) are concatenated across partitions.
"""

from __future__ import annotations

import builtins
import hashlib
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from azhpc import scatter as scatter_api
from azhpc import splitting
from azhpc.core.calls import RowRange, TakePartition
from azhpc.core.pickling import dumps
from azhpc.errors import (
    ConfigError,
    TaskError,
    UndefinedVariableError,
    UnpicklableVariableError,
)
from azhpc.notebook.cellgather import AzrunResult, GatherMap, GatherPlain, GatherScatter
from azhpc.notebook.cellrun import CellRunner
from azhpc.notebook.cellvars import CellNames, analyze_cell, analyze_expression
from azhpc.notebook.mpicell import submit_mpi_cell
from azhpc.session import current_session

if TYPE_CHECKING:
    from azhpc.core.job import Job
    from azhpc.session import Session

__all__ = [
    "AzrunResult",
    "cell_filename",
    "run_cell",
    "run_expression",
    "ship_variables",
    "submit_cell",
    "submit_expression",
]

_BUILTINS = frozenset(dir(builtins))


def cell_filename(source: str, count: int | None = None) -> str:
    """The name a cell's lines go by in remote tracebacks: ``<azrun In[3] 1a2b3c4d>``."""
    digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()[:8]
    label = f"In[{count}]" if count is not None else "cell"
    return f"<azrun {label} {digest}>"


# -- the variables a cell needs ------------------------------------------------------------


def ship_variables(
    names: CellNames,
    namespace: Mapping[str, Any],
    *,
    bound: Iterable[str] = (),
    ignore: Iterable[str] = (),
) -> dict[str, bytes]:
    """Pickle the notebook variables a cell reads, each on its own, before anything runs.

    Parameters
    ----------
    names
        The cell's names (:func:`~azhpc.notebook.cellvars.analyze_cell`).
    namespace
        The notebook's namespace.
    bound
        Names the task binds itself (``--map NAME``, ``--scatter DF``): not shipped.
    ignore
        Namespace entries to treat as absent (IPython's own, such as its ``open``).

    Returns
    -------
    dict
        Variable name to its cloudpickle bytes.

    Raises
    ------
    UndefinedVariableError
        The cell reads names that are neither in the namespace, builtins, nor assigned by the
        cell; lists them all.
    UnpicklableVariableError
        Variables that cannot be sent to the workers; names each with its type.
    """
    __tracebackhide__ = True  # IPython: show the error, not these frames

    skip = set(bound)
    hidden = set(ignore)
    undefined: list[str] = []
    shipped: dict[str, bytes] = {}
    unpicklable: list[tuple[str, str, str]] = []
    for name in names.free:
        if name in skip:
            continue
        if name in namespace and name not in hidden:
            try:
                shipped[name] = dumps(namespace[name])
            except Exception as exc:
                kind = type(namespace[name])
                unpicklable.append(
                    (name, f"{kind.__module__}.{kind.__qualname__}", f"{type(exc).__name__}: {exc}")
                )
        elif name not in _BUILTINS and name not in names.assigns:
            undefined.append(name)
    if undefined:
        listed = ", ".join(repr(n) for n in undefined)
        raise UndefinedVariableError(
            f"the cell reads {listed}, which {'is' if len(undefined) == 1 else 'are'} not "
            "defined in the notebook (nor a builtin, nor assigned in the cell); nothing was "
            "run. Run the cell that defines it first, or check the spelling.",
            names=tuple(undefined),
        )
    if unpicklable:
        lines = "\n".join(f"  - {n} ({kind}): {why}" for n, kind, why in unpicklable)
        raise UnpicklableVariableError(
            f"the cell reads variable(s) that cannot be sent to the workers; nothing was run:\n"
            f"{lines}\nCreate such objects (locks, open files, connections, generators) "
            "inside the cell instead, or pass what they are built from (a path, a URL).",
            names=tuple(n for n, _, _ in unpicklable),
        )
    return shipped


# -- submitting ---------------------------------------------------------------------------


def _scatter_plan(
    runner: CellRunner, data: Any, name: str, count: int, by: Sequence[Hashable] | None
) -> tuple[Callable[..., Any], Any, list[Any]]:
    """How ``--scatter`` cuts ``data``: the task function, the input staged once, the pieces.

    A frame or series is staged once for the whole job, as :func:`azhpc.map_partitions` does,
    and each task takes its rows (a row range, or with ``--by`` the rows of its partition).
    An array is cut into blocks along its first axis, as :func:`azhpc.map_blocks` does.
    """
    numpy = sys.modules.get("numpy")
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame | pandas.Series):
        if by and len(data):
            columns = [_column(data, name, c) for c in by]
            codes, used = splitting.partition_codes(
                data, columns if len(columns) > 1 else columns[0], count
            )
            return TakePartition(runner), (data, codes), used
        for column in by or ():
            _column(data, name, column)  # an empty frame still names a missing column
        return RowRange(runner), data, splitting.row_bounds(data, count)
    if numpy is not None and isinstance(data, numpy.ndarray):
        if by:
            raise ConfigError(f"--by needs a DataFrame; {name} is a numpy array")
        return runner, None, splitting.split_blocks(data, count, 0)
    raise ConfigError(
        f"--scatter {name}: {name} is a {type(data).__name__}; it must be a pandas DataFrame "
        "or Series, or a numpy array (use --map for other collections)"
    )


def _column(frame: Any, name: str, column: Hashable) -> Hashable:
    """A ``--by`` column as the frame spells it (``--by 0`` finds an integer column 0)."""
    columns = getattr(frame, "columns", ())
    if column in columns:
        return column
    if isinstance(column, str) and column.lstrip("-").isdigit() and int(column) in columns:
        return int(column)
    raise ConfigError(
        f"--by {column}: {name} has no column {column!r}; its columns are {list(columns)!r}"
    )


def _check_out(out: Sequence[str], names: CellNames, bound: str | None) -> None:
    known = set(names.assigns) | set(names.free) | ({bound} if bound else set())
    unknown = [n for n in out if n not in known]
    if unknown:
        raise ConfigError(
            f"--out {','.join(unknown)}: the cell neither assigns nor reads "
            f"{', '.join(map(repr, unknown))}; --out names variables the cell assigns "
            "(or reads and changes in place)"
        )


def submit_cell(
    source: str,
    namespace: Mapping[str, Any],
    *,
    map_name: str | None = None,
    items: Iterable[Any] | None = None,
    scatter: str | None = None,
    partitions: int | None = None,
    by: Sequence[Hashable] | None = None,
    out: Sequence[str] = (),
    store: str | None = None,
    retries: int = 0,
    pool: Session | None = None,
    filename: str | None = None,
    ignore: Iterable[str] = (),
    mpi: int | None = None,
) -> Job:
    """Check a cell's variables and start it on the pool; return the running Job.

    Everything that can be checked is checked before the job starts: the cell parses, every
    name it reads is defined, every variable it ships can be pickled, ``--out`` names exist.

    Parameters
    ----------
    source
        The cell's Python source.
    namespace
        Where the cell's variables are looked up (the notebook's ``user_ns``).
    map_name, items
        Run once per item with ``map_name`` bound to it (``--map NAME in EXPR``).
    scatter
        The name of a DataFrame/Series/ndarray in ``namespace`` to run once per partition of.
    partitions
        How many partitions (``--scatter DF:N``); default two per worker slot.
    by
        Columns to partition by, so that every group lands whole in one partition.
    out
        Variables to bring back (plain and scatter forms); default: plain: every name the cell
        assigns; scatter: none (the last expression's values are concatenated instead).
    store
        ``--map`` form: the variable the list of values goes into (``None``: none).
    retries
        How many more times a failing task is run.
    pool
        The session; default: the current one.
    filename
        The cell's name in tracebacks (see :func:`cell_filename`).
    ignore
        Namespace names to treat as absent (IPython's own entries).
    mpi
        Run the cell as an mpi4py program with this many ranks, one per node of ``pool`` (an
        MPI :class:`azhpc.Pool`); rank 0's values come back (``--mpi N``).

    Returns
    -------
    Job
        ``job.result()`` is an :class:`AzrunResult`.

    Raises
    ------
    SyntaxError, UndefinedVariableError, UnpicklableVariableError, ConfigError
        Before anything runs.
    """
    __tracebackhide__ = True  # IPython: show the error, not these frames
    if map_name is not None and scatter is not None:
        raise ConfigError("--map and --scatter cannot be used together; choose one")
    if by and scatter is None:
        raise ConfigError("--by applies to --scatter; add --scatter DF")
    if mpi is not None and (map_name is not None or scatter is not None or retries):
        raise ConfigError(
            "--mpi runs the cell once per rank as one MPI program; it does not combine with "
            "--map, --scatter or --retries"
        )
    filename = filename or cell_filename(source)
    names = analyze_cell(source, filename)
    session = current_session(pool)
    bound = map_name or scatter
    _check_out(out, names, bound)
    shipped = ship_variables(names, namespace, bound=[bound] if bound else [], ignore=ignore)
    gather: Callable[[list[Any]], AzrunResult]
    if map_name is not None:
        values = list(items if items is not None else ())
        size = splitting.auto_chunksize(len(values), session.total_slots)
        pieces: list[Any] = splitting.chunk(values, size)
        runner = CellRunner(source, filename, shipped, bind=map_name, each=True)
        gather, label = GatherMap(store), f"%%azrun --map {map_name}"
    elif scatter is not None:
        if scatter not in namespace:
            raise UndefinedVariableError(
                f"--scatter {scatter}: there is no variable {scatter!r} in the notebook; "
                "nothing was run",
                names=(scatter,),
            )
        count = partitions if partitions is not None else 2 * session.total_slots
        runner = CellRunner(source, filename, shipped, bind=scatter, pull=tuple(out))
        task, shared, pieces = _scatter_plan(runner, namespace[scatter], scatter, count, by)
        gather = GatherScatter(tuple(out), values=not out and names.ends_with_expression)
        label = f"%%azrun --scatter {scatter}"
        return scatter_api.run_pieces(
            session, task, pieces, name=label, gather=gather, retries=retries, shared=shared
        )
    else:
        pull = tuple(out) if out else names.assigns
        runner = CellRunner(source, filename, shipped, pull=pull, strict=bool(out))
        if mpi is not None:
            return submit_mpi_cell(runner, mpi, session)
        pieces, gather, label = [None], GatherPlain(), "%%azrun"
    job = scatter_api.run_pieces(
        session, runner, pieces, name=label, gather=gather, retries=retries
    )
    return job


def submit_expression(
    source: str,
    namespace: Mapping[str, Any],
    *,
    retries: int = 0,
    pool: Session | None = None,
    filename: str | None = None,
    ignore: Iterable[str] = (),
) -> Job:
    """Start one expression on the pool (``%azrun EXPR``); ``job.result().value`` is its value.

    Raises
    ------
    SyntaxError, UndefinedVariableError, UnpicklableVariableError
        Before anything runs.
    """
    __tracebackhide__ = True  # IPython: show the error, not these frames
    source = source.strip()
    filename = filename or cell_filename(source)
    names = analyze_expression(source, filename)
    session = current_session(pool)
    shipped = ship_variables(names, namespace, ignore=ignore)
    runner = CellRunner(source, filename, shipped)
    job = scatter_api.run_pieces(
        session, runner, [None], name="%azrun", gather=GatherPlain(), retries=retries
    )
    return job


def _wait(job: Job, pool: Session | None) -> AzrunResult:
    """Wait showing progress; print what the tasks printed; raise their errors cleanly."""
    __tracebackhide__ = True  # IPython: show the error, not these frames
    try:
        return scatter_api.wait(job, current_session(pool))
    except TaskError as error:
        raise error from None
    finally:
        if job.done() and not job.cancelled():
            sys.stdout.write(job.output)
            sys.stdout.flush()


def run_cell(
    source: str,
    namespace: MutableMapping[str, Any],
    *,
    wait: bool = True,
    job_variable: str = "_",
    push: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> Any:
    """Run a cell on the pool like ``%%azrun``: wait, print, put variables back, return the value.

    Parameters
    ----------
    source, namespace
        The cell and the notebook's namespace.
    wait
        ``False`` (``--no-wait``): store the running Job as ``namespace[job_variable]`` and
        return it; the namespace is not updated when it finishes (read
        ``job.result().variables``).
    job_variable
        Where ``--no-wait`` stores the Job.
    push
        How variables go into the namespace (IPython's ``shell.push``); default
        ``namespace.update``.
    **options
        As for :func:`submit_cell`.

    Returns
    -------
    object
        The :attr:`AzrunResult.value`, or the Job with ``wait=False``.

    Examples
    --------
    >>> ns = {"x": 20}
    >>> run_cell("y = x + 1\\ny * 2", ns)
    42
    >>> ns["y"]
    21
    """
    __tracebackhide__ = True  # IPython: show the error, not these frames
    job = submit_cell(source, namespace, **options)
    if not wait:
        namespace[job_variable] = job
        return job
    result = _wait(job, options.get("pool"))
    (push or namespace.update)(dict(result.variables))
    return result.value


def run_expression(
    source: str,
    namespace: Mapping[str, Any],
    **options: Any,
) -> Any:
    """Evaluate one expression on the pool like ``%azrun EXPR`` and return its value.

    Examples
    --------
    >>> run_expression("sum(range(n))", {"n": 10})
    45
    """
    __tracebackhide__ = True  # IPython: show the error, not these frames
    job = submit_expression(source, namespace, **options)
    return _wait(job, options.get("pool")).value


# -- remote tracebacks --------------------------------------------------------------------
