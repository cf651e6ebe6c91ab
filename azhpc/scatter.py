"""The scatter API: split work into tasks, run them on a session, gather results in order.

Every form builds one job: the function is serialized once (cloudpickle) and each task gets
a piece of the input. ``map`` cuts an iterable into chunks, ``map_partitions`` cuts a frame by
rows or by key, ``map_blocks`` cuts an array along an axis. Results come back in input order,
put together the way the input was cut; a failed task raises :class:`azhpc.TaskError` with
the remote traceback.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from azhpc import splitting
from azhpc.core.calls import ApplyEach, CallWithArguments, RowRange, TakePartition
from azhpc.core.payload import Payload, encode
from azhpc.core.spec import JobSpec, Placement, TaskSpec, new_job_id
from azhpc.errors import ConfigError
from azhpc.session import Session, current_session

if TYPE_CHECKING:
    from azhpc.core.job import Job

__all__ = [
    "attach",
    "map",
    "map_blocks",
    "map_partitions",
    "submit",
    "submit_call",
    "submit_map",
]


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _check_callable(fn: Any, where: str) -> None:
    if not callable(fn):
        raise ConfigError(f"{where} takes a function first, got {type(fn).__name__}: {fn!r}")


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be a whole number >= 0, got {retries!r}")
    return retries


def run_pieces(
    session: Session,
    function: Callable[[Any], Any],
    pieces: list[Any],
    *,
    name: str,
    gather: Callable[[list[Any]], Any],
    retries: int = 0,
    shared: Any = None,
    placement: Placement | None = None,
) -> Job:
    """Run ``function`` once per piece of input as one job on ``session``; return the Job.

    The building block of every scatter form (and of the ``%%azrun`` magic). With
    ``shared``, the object is staged once for the whole job and each task calls
    ``function(shared, piece)``. ``placement`` (Batch only) pins tasks to nodes or makes the
    job one multi-instance task (:func:`azhpc.run_on_pool`).
    """
    import contextlib

    from azhpc.core.payload import local_modules_by_value

    retries = _check_retries(retries)
    job_id = new_job_id()
    remote = getattr(session.backend, "remote_nodes", False)
    with local_modules_by_value() if remote else contextlib.nullcontext():
        tasks = tuple(
            TaskSpec(JobSpec.task_id(i), i, encode(piece, what=f"the input of task {i}"))
            for i, piece in enumerate(pieces)
        )
        spec = JobSpec(
            job_id=job_id,
            name=name,
            function=encode(function, what=f"the function {name}", out_of_band=False),
            tasks=tasks,
            retries=retries,
            shared=None if shared is None else encode(shared, what="the shared input"),
            placement=placement,
        )
    return session.run_job(spec, gather)


def wait(job: Job, session: Session, progress: bool | None = None) -> Any:
    """Wait for ``job`` showing its progress, and return its result.

    Ctrl-C while waiting cancels the job (its running tasks stop) and re-raises.
    """
    from azhpc.progress import watch

    show = session.progress if progress is None else progress
    view = watch(job, enabled=show, after=session.progress_after)
    try:
        # Wait in short slices so that Ctrl-C (and any signal) is handled promptly.
        while not job.done():
            concurrent.futures.wait([job], timeout=0.1)
        return job.result()
    except KeyboardInterrupt:
        job.cancel()
        raise
    except concurrent.futures.CancelledError:
        raise job.exception_if_cancelled() from None
    finally:
        if view is not None:
            view.close()


def submit_map(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    chunksize: int | None = None,
    retries: int = 0,
    pool: Session | None = None,
) -> Job:
    """Start ``fn(item)`` for every item; return the running :class:`Job` (its result: a list).

    See :func:`map` for the parameters.
    """
    _check_callable(fn, "submit_map")
    session = current_session(pool)
    items = list(iterable)
    size = chunksize or splitting.auto_chunksize(len(items), session.total_slots)
    return run_pieces(
        session,
        ApplyEach(fn),
        splitting.chunk(items, size),
        name=f"map({_name(fn)})",
        gather=splitting.flatten,
        retries=retries,
    )


def map(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    chunksize: int | None = None,
    retries: int = 0,
    pool: Session | None = None,
    progress: bool | None = None,
) -> list[Any]:
    """Apply ``fn`` to every item on the pool; return the results in input order.

    Parameters
    ----------
    fn
        A function of one argument. Lambdas, closures and notebook functions work.
    iterable
        The items (read whole before the job starts).
    chunksize
        Items per task; default: about four tasks per worker slot.
    retries
        How many more times a task whose function raised is run.
    pool
        The session to run on; default: the default session.
    progress
        Show progress (``None``: the session's setting).

    Returns
    -------
    list
        ``[fn(x) for x in iterable]``, computed on the pool.

    Raises
    ------
    TaskError
        A task failed: carries the remote exception's type, message and traceback.

    Examples
    --------
    >>> import azhpc
    >>> azhpc.map(lambda x: x * x, range(5))
    [0, 1, 4, 9, 16]
    """
    job = submit_map(fn, iterable, chunksize=chunksize, retries=retries, pool=pool)
    return wait(job, current_session(pool), progress)


def map_partitions(
    fn: Callable[[Any], Any],
    df: Any,
    *,
    partitions: int | None = None,
    by: Hashable | list[Hashable] | None = None,
    retries: int = 0,
    pool: Session | None = None,
    progress: bool | None = None,
    block: bool = True,
) -> Any:
    """Apply ``fn`` to partitions of a DataFrame on the pool; concatenate the results.

    Parameters
    ----------
    fn
        A function taking a DataFrame (or Series) partition.
    df
        The frame to cut.
    partitions
        How many partitions; default: two per worker slot.
    by
        Column name(s): cut so that each group lands whole in one partition. Partitions
        hold contiguous ranges of sorted keys, so results come back in key order.
        Without ``by``, the frame is cut into consecutive row ranges.
    retries, pool, progress
        As for :func:`map`.
    block
        ``False`` returns the running :class:`Job` instead of waiting.

    Returns
    -------
    DataFrame, Series or list
        ``pandas.concat`` of the results when every partition returned a frame or series,
        in partition order; otherwise the list of results.

    Examples
    --------
    >>> import azhpc, pandas as pd
    >>> df = pd.DataFrame({"k": [1, 1, 2], "x": [1.0, 2.0, 3.0]})
    >>> azhpc.map_partitions(lambda p: p.assign(y=p.x * 2), df, partitions=2).y.tolist()
    [2.0, 4.0, 6.0]
    """
    _check_callable(fn, "map_partitions")
    session = current_session(pool)
    count = partitions if partitions is not None else 2 * session.total_slots
    # The frame is staged once for the whole job; each task takes its own rows from it.
    if by is None:
        bounds = splitting.row_bounds(df, count)
        function, shared, pieces = RowRange(fn), df, bounds
    else:
        codes, used = splitting.partition_codes(df, by, count)
        function, shared, pieces = TakePartition(fn), (df, codes), used
    job = run_pieces(
        session,
        function,
        pieces,
        name=f"map_partitions({_name(fn)})",
        gather=splitting.concat_frames_or_list,
        retries=retries,
        shared=shared,
    )
    return wait(job, session, progress) if block else job


def map_blocks(
    fn: Callable[[Any], Any],
    array: Any,
    *,
    blocks: int | None = None,
    axis: int = 0,
    retries: int = 0,
    pool: Session | None = None,
    progress: bool | None = None,
    block: bool = True,
) -> Any:
    """Apply ``fn`` to blocks of a numpy array on the pool; concatenate the results.

    Parameters
    ----------
    fn
        A function taking an array block.
    array
        The array to cut.
    blocks
        How many blocks; default: two per worker slot.
    axis
        The axis to cut along and to concatenate along.
    retries, pool, progress, block
        As for :func:`map_partitions`.

    Returns
    -------
    ndarray or list
        ``numpy.concatenate(results, axis)`` when every block returned an array, else the list.

    Examples
    --------
    >>> import azhpc, numpy as np
    >>> azhpc.map_blocks(np.sqrt, np.array([1.0, 4.0, 9.0]), blocks=2)
    array([1., 2., 3.])
    """
    _check_callable(fn, "map_blocks")
    session = current_session(pool)
    count = blocks if blocks is not None else 2 * session.total_slots
    pieces = splitting.split_blocks(array, count, axis)
    job = run_pieces(
        session,
        fn,
        pieces,
        name=f"map_blocks({_name(fn)})",
        gather=functools.partial(splitting.concat_blocks, axis=axis),
        retries=retries,
    )
    return wait(job, session, progress) if block else job


def submit_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    retries: int = 0,
    pool: Session | None = None,
) -> Job:
    """Start ``fn(*args, **kwargs)`` as a one-task job; return the running :class:`Job`."""
    _check_callable(fn, "submit")
    session = current_session(pool)
    return run_pieces(
        session,
        CallWithArguments(fn),
        [(tuple(args), dict(kwargs or {}))],
        name=_name(fn),
        gather=lambda values: values[0],
        retries=retries,
    )


def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
    """Start ``fn(*args, **kwargs)`` on the default session; return the running :class:`Job`.

    The Job is a ``concurrent.futures.Future``: ``job.result(timeout=...)`` waits for the
    value, ``job.progress`` counts its task, ``job.cancel()`` stops it. Use
    ``session.submit`` for another session, and :class:`azhpc.Executor` for retries.

    Examples
    --------
    >>> import azhpc
    >>> azhpc.submit(pow, 2, 10).result()
    1024
    """
    return submit_call(fn, args, kwargs)


def attach(job_id: str, *, pool: Session | None = None) -> Job:
    """Rebuild a durable job in this process from the session's lake.

    Tasks whose outcome is stored are not run again; the others are run on this session.
    The returned :class:`Job` has the same id, progress and result as the original.

    Parameters
    ----------
    job_id
        The id of a job submitted by a session with durable jobs on.
    pool
        The session (it must use the same lake); default: the default session.

    Raises
    ------
    ConfigError
        The session keeps no durable jobs.
    JobNotFoundError
        The lake holds no job with that id.

    Examples
    --------
    >>> job = azhpc.attach("azhpc-20261123-101500-1a2b3c")   # doctest: +SKIP
    >>> job.progress.succeeded, job.result()                   # doctest: +SKIP
    """

    session = current_session(pool)
    store = getattr(session, "store", None)
    if store is None:
        raise ConfigError(
            "this session keeps no durable jobs, so there is nothing to attach to; "
            "connect with durable=True (the default on the emulated and azure profiles)"
        )
    manifest = store.load_manifest(job_id)
    finished = store.finished_outcomes(job_id)
    missing = {task_id for task_id, _, _ in manifest.tasks if task_id not in finished}
    spec, gather = store.rebuild(manifest, missing)
    full = JobSpec(
        job_id=manifest.job_id,
        name=manifest.name,
        function=spec.function,
        tasks=tuple(TaskSpec(task_id, index, Payload(b"")) for task_id, index, _ in manifest.tasks),
        retries=manifest.retries,
    )
    return session.resume_job(full, spec, gather, finished)
