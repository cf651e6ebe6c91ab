"""The scatter API on the default session: ``azhpc.map``, ``map_partitions``, ``map_blocks``,
``submit``, ``submit_map``, ``attach``.

Each function runs on ``session=`` (an :func:`azhpc.connect` session or an
:class:`azhpc.Pool`; ``pool=`` is the same argument), else on the default session, opening a
``local`` one when there is none. The forms themselves are in :mod:`azhpc.scatter`.
One convention for not waiting: ``block=False`` returns the running
:class:`~azhpc.core.job.Job` (a ``concurrent.futures.Future``); ``submit_map`` is
``map(..., block=False)``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from azhpc import scatter
from azhpc.session import Session, current_session

if TYPE_CHECKING:
    from azhpc.core.job import Job

__all__ = ["attach", "map", "map_blocks", "map_partitions", "submit", "submit_map"]


def map(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    chunksize: int | None = None,
    retries: int = 0,
    session: Session | None = None,
    pool: Session | None = None,
    progress: bool | None = None,
    block: bool = True,
) -> Any:
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
    session, pool
        The session to run on (one or the other; ``pool=`` reads well with an
        :class:`azhpc.Pool`); default: the default session.
    progress
        Show progress (``None``: the session's setting).
    block
        ``False`` returns the running :class:`~azhpc.core.job.Job` instead of waiting.

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
    return scatter.map(
        current_session(session, pool=pool),
        fn,
        iterable,
        chunksize=chunksize,
        retries=retries,
        progress=progress,
        block=block,
    )


def submit_map(
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    chunksize: int | None = None,
    retries: int = 0,
    session: Session | None = None,
    pool: Session | None = None,
) -> Job:
    """Start ``fn(item)`` for every item; return the running :class:`Job` (its result: a list).

    The same as ``map(..., block=False)``; see :func:`map` for the parameters.
    """
    return map(
        fn, iterable, chunksize=chunksize, retries=retries, session=session, pool=pool, block=False
    )


def map_partitions(
    fn: Callable[[Any], Any],
    df: Any,
    *,
    partitions: int | None = None,
    by: Hashable | list[Hashable] | None = None,
    retries: int = 0,
    session: Session | None = None,
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
        The frame to cut. It is staged once for the whole job; each task takes its rows.
    partitions
        How many partitions; default: two per worker slot.
    by
        Column name(s): cut so that each group lands whole in one partition. Partitions
        hold contiguous ranges of sorted keys, so results come back in key order.
        Without ``by``, the frame is cut into consecutive row ranges.
    retries, session, pool, progress, block
        As for :func:`map`.

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
    return scatter.map_partitions(
        current_session(session, pool=pool),
        fn,
        df,
        partitions=partitions,
        by=by,
        retries=retries,
        progress=progress,
        block=block,
    )


def map_blocks(
    fn: Callable[[Any], Any],
    array: Any,
    *,
    blocks: int | None = None,
    axis: int = 0,
    retries: int = 0,
    session: Session | None = None,
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
    retries, session, pool, progress, block
        As for :func:`map`.

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
    return scatter.map_blocks(
        current_session(session, pool=pool),
        fn,
        array,
        blocks=blocks,
        axis=axis,
        retries=retries,
        progress=progress,
        block=block,
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
    return scatter.submit(current_session(), fn, args, kwargs)


def attach(job_id: str, *, session: Session | None = None, pool: Session | None = None) -> Job:
    """Rebuild a durable job in this process from the session's lake.

    Tasks whose outcome is stored are not run again; the others are run on this session.
    The returned :class:`Job` has the same id, progress and result as the original.

    Parameters
    ----------
    job_id
        The id of a job submitted by a session with durable jobs on.
    session, pool
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
    return scatter.attach(current_session(session, pool=pool), job_id)
