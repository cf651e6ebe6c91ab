"""The scatter forms on a given session: cut the input into tasks, run them as one job, gather.

Every form builds one job: the function is serialized once (cloudpickle) and each task gets
a piece of the input. ``map`` cuts an iterable into chunks, ``map_partitions`` cuts a frame by
rows or by key, ``map_blocks`` cuts an array along an axis. Results come back in input order,
put together the way the input was cut; a failed task raises :class:`azhpc.TaskError` with
the remote traceback.

Each form takes the session first and, with ``block=False``, returns the running
:class:`~azhpc.core.job.Job` instead of waiting. ``Session.map`` and friends call these; the
public ``azhpc.map`` (:mod:`azhpc.api`) picks the default session and calls them too.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from azhpc import splitting
from azhpc.core.calls import ApplyEach, CallWithArguments, RowRange, TakePartition
from azhpc.core.payload import Payload, encode, local_modules_by_value
from azhpc.core.spec import JobSpec, Placement, TaskSpec, new_job_id
from azhpc.errors import ArgumentTypeError, ConfigError
from azhpc.progress import watch

if TYPE_CHECKING:
    from azhpc.core.job import Job
    from azhpc.session import Session

__all__ = [
    "attach",
    "check_callable",
    "items_of",
    "map",
    "map_blocks",
    "map_partitions",
    "run_pieces",
    "submit",
    "wait",
]


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def check_callable(fn: Any, where: str) -> None:
    """Refuse a function that is not callable, naming the call (``where``)."""
    if not callable(fn):
        raise ArgumentTypeError(f"{where} takes a function first, got {type(fn).__name__}: {fn!r}")


def items_of(iterable: Any, where: str, name: str = "iterable") -> list[Any]:
    """The items of ``iterable`` as a list; an :class:`ArgumentTypeError` naming the call and
    the argument when it is not iterable (``None``, a number)."""
    try:
        iterator = iter(iterable)
    except TypeError:
        raise ArgumentTypeError(
            f"{where} takes the items to run the function on as its {name} (a list, range, "
            f"generator or other iterable), got {type(iterable).__name__}: {iterable!r}"
        ) from None
    return list(iterator)


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
    retries = _check_retries(retries)
    job_id = new_job_id()
    remote = session.backend.remote_nodes
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


def map(
    session: Session,
    fn: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    chunksize: int | None = None,
    retries: int = 0,
    progress: bool | None = None,
    block: bool = True,
) -> Any:
    """``fn`` over every item, in chunks of ``chunksize`` items per task (see :func:`azhpc.map`)."""
    check_callable(fn, "map")
    if chunksize is not None:
        chunksize = splitting.whole_number("chunksize", chunksize)
    items = items_of(iterable, "map")
    size = chunksize or splitting.auto_chunksize(len(items), session.total_slots)
    job = run_pieces(
        session,
        ApplyEach(fn),
        splitting.chunk(items, size),
        name=f"map({_name(fn)})",
        gather=splitting.flatten,
        retries=retries,
    )
    return wait(job, session, progress) if block else job


def map_partitions(
    session: Session,
    fn: Callable[[Any], Any],
    df: Any,
    *,
    partitions: int | None = None,
    by: Hashable | list[Hashable] | None = None,
    retries: int = 0,
    progress: bool | None = None,
    block: bool = True,
) -> Any:
    """``fn`` over partitions of a frame staged once (see :func:`azhpc.map_partitions`)."""
    check_callable(fn, "map_partitions")
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
    session: Session,
    fn: Callable[[Any], Any],
    array: Any,
    *,
    blocks: int | None = None,
    axis: int = 0,
    retries: int = 0,
    progress: bool | None = None,
    block: bool = True,
) -> Any:
    """``fn`` over blocks of an array along ``axis`` (see :func:`azhpc.map_blocks`)."""
    check_callable(fn, "map_blocks")
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


def submit(
    session: Session,
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    retries: int = 0,
) -> Job:
    """Start ``fn(*args, **kwargs)`` as a one-task job; return the running :class:`Job`."""
    check_callable(fn, "submit")
    return run_pieces(
        session,
        CallWithArguments(fn),
        [(tuple(args), dict(kwargs or {}))],
        name=_name(fn),
        gather=lambda values: values[0],
        retries=retries,
    )


def attach(session: Session, job_id: str) -> Job:
    """Rebuild durable job ``job_id`` on ``session`` (see :func:`azhpc.attach`)."""
    store = session.store
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
