"""The scatter API through the public functions, on every backend (conformance suite)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import azhpc
from azhpc.core.states import TaskResult, TaskState


def square(x):
    return x * x


def test_map_returns_results_in_input_order(session):
    assert session.map(square, range(50)) == [x * x for x in range(50)]


def test_map_runs_lambdas_and_closures(session):
    offset = 7
    assert session.map(lambda x: x + offset, [1, 2, 3]) == [8, 9, 10]


def test_map_empty_input_gives_empty_list(session):
    assert session.map(square, []) == []


def test_map_chunksize_sets_task_count(session):
    job = session.submit_map(square, range(10), chunksize=3)
    assert job.result() == [x * x for x in range(10)]
    assert job.progress.total == 4


def test_module_level_map_uses_the_default_session(session):
    # connect() made `session` the default one.
    job = azhpc.submit(square, 12)
    assert job.result() == 144
    assert azhpc.map(square, [3]) == [9]


def test_submit_returns_a_future_with_progress(session):
    job = session.submit(divmod, 17, 5)
    assert isinstance(job, concurrent.futures.Future)
    assert job.result(timeout=60) == (3, 2)
    p = job.progress
    assert (p.total, p.succeeded, p.failed, p.queued, p.running) == (1, 1, 0, 0, 0)
    assert p.finished
    [task] = job.tasks
    assert task.state is TaskState.COMPLETED and task.result is TaskResult.SUCCESS
    assert job.exception() is None


def test_task_output_is_kept(session):
    def chatty(x):
        print(f"item {x}")
        return x

    job = session.submit_map(chatty, [1, 2], chunksize=1)
    job.result()
    assert job.output == "item 1\nitem 2\n"


def test_map_partitions_by_rows_concatenates_in_order(session):
    df = pd.DataFrame({"x": np.arange(1000), "y": np.arange(1000) % 7})
    out = session.map_partitions(lambda p: p.assign(z=p.x * 2), df, partitions=4)
    pd.testing.assert_frame_equal(out, df.assign(z=df.x * 2))


def test_map_partitions_by_key_keeps_each_group_whole(session):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"k": rng.integers(0, 25, 5000), "v": rng.random(5000)})

    def per_partition(part):
        return part.assign(share=part.v / part.groupby("k").v.transform("sum"))

    out = session.map_partitions(per_partition, df, partitions=6, by="k")
    expected = df.assign(share=df.v / df.groupby("k").v.transform("sum"))
    pd.testing.assert_frame_equal(out.sort_index(), expected)
    # Each group lands whole in one partition; partitions hold ascending key ranges.
    key_sets = session.map_partitions(lambda p: sorted(set(p.k)), df, partitions=6, by="k")
    assert len(key_sets) == 6
    flat = [k for keys in key_sets for k in keys]
    assert flat == sorted(set(df.k)), "every key in exactly one partition, in key order"


def test_map_partitions_by_several_keys(session):
    df = pd.DataFrame({"a": [1, 2, 1, 2, 1], "b": ["x", "x", "y", "x", "x"], "v": range(5)})
    sizes = session.map_partitions(
        lambda p: p.groupby(["a", "b"]).size(), df, partitions=3, by=["a", "b"]
    )
    pd.testing.assert_series_equal(sizes, df.groupby(["a", "b"]).size())


def test_map_partitions_non_frame_results_come_back_as_list(session):
    df = pd.DataFrame({"x": range(10)})
    assert session.map_partitions(lambda p: int(p.x.sum()), df, partitions=2) == [10, 35]


def test_map_partitions_rejects_bad_input_clearly(session):
    df = pd.DataFrame({"x": range(4)})
    with pytest.raises(azhpc.ConfigError, match="DataFrame"):
        session.map_partitions(len, [1, 2, 3])
    with pytest.raises(azhpc.ConfigError, match="no column 'nope'"):
        session.map_partitions(len, df, by="nope")
    with pytest.raises(azhpc.ConfigError, match="partitions"):
        session.map_partitions(len, df, partitions=0)
    with pytest.raises(azhpc.ConfigError, match="function"):
        session.map_partitions(df, len)


def test_map_blocks_along_each_axis(session):
    a = np.arange(60.0).reshape(6, 10)
    np.testing.assert_array_equal(session.map_blocks(np.sqrt, a, blocks=3), np.sqrt(a))
    out = session.map_blocks(lambda b: b * 2, a, blocks=4, axis=1)
    np.testing.assert_array_equal(out, a * 2)


def test_map_blocks_scalar_results_come_back_as_list(session):
    assert session.map_blocks(np.sum, np.arange(10), blocks=2) == [10, 35]


def test_map_blocks_mismatched_results_raise_gather_error(session):
    with pytest.raises(azhpc.GatherError, match="could not be put together"):
        session.map_blocks(lambda b: b.reshape(1, -1), np.arange(10), blocks=3)


def test_failed_task_raises_task_error_with_remote_details(session):
    def explode(x):
        if x == 3:
            raise ValueError(f"bad item {x}")
        return x

    job = session.submit_map(explode, range(6), chunksize=2)
    with pytest.raises(azhpc.TaskError) as info:
        job.result()
    error = info.value
    assert isinstance(error, azhpc.AzhpcError)
    assert error.task_id == "task-00001"
    assert error.remote_type == "ValueError"
    assert error.remote_message == "bad item 3"
    assert "explode" in error.remote_traceback and 'raise ValueError(f"bad item {x}")' in (
        error.remote_traceback
    )
    assert isinstance(error.remote_exception, ValueError)
    assert "bad item 3" in str(error) and "Remote traceback" in str(error)
    rendered = "\n".join(error._render_traceback_())
    assert "ValueError: bad item 3" in rendered and "task-00001" in rendered
    assert job.progress.failed == 1 and job.progress.succeeded == 2


def test_several_failures_collect_into_one_error(session):
    def odd_fails(x):
        if x % 2:
            raise RuntimeError(f"odd {x}")
        return x

    with pytest.raises(azhpc.CompositeTaskError) as info:
        session.map(odd_fails, range(6), chunksize=1)
    error = info.value
    assert isinstance(error, azhpc.TaskError)
    assert [e.remote_message for e in error.errors] == ["odd 1", "odd 3", "odd 5"]
    assert "3 of 6 tasks" in str(error)
    assert all(f"odd {i}" in str(error) for i in (1, 3, 5))


def test_retries_run_a_failed_task_again(session, tmp_path):
    marker = tmp_path / "attempts"

    def flaky(x):
        with marker.open("a") as f:
            f.write(".")
        if len(marker.read_text()) < 2:
            raise OSError("transient")
        return x + 1

    job = session.submit_map(flaky, [1], retries=2)
    assert job.result(timeout=60) == [2]
    assert marker.read_text() == ".."
    assert job.tasks[0].retry_count == 1
    assert job.progress.retried == 1


def test_retries_exhausted_reports_attempts(session):
    def always(x):
        raise OSError("still broken")

    with pytest.raises(azhpc.TaskError, match="after 3 attempts"):
        session.map(always, [1], retries=2)


def test_unpicklable_argument_is_refused_before_running(session):
    import threading

    with pytest.raises(azhpc.SerializationError, match="cannot be sent to the workers"):
        session.map(square, [threading.Lock()])


def test_unpicklable_return_value_is_a_task_error(session):
    import threading

    with pytest.raises(azhpc.TaskError) as info:
        session.map(lambda _: threading.Lock(), [1])
    message = info.value.remote_message
    assert info.value.remote_type == "azhpc.errors.SerializationError"
    assert "could not be sent back from the worker" in message
    assert "to the workers" not in message
    assert "_thread.lock" in message  # the type, not azhpc's wrapper around the value


def test_open_file_is_refused_not_sent_as_a_copy(session, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("contents\n")
    with path.open() as f:
        with pytest.raises(azhpc.SerializationError, match="open file") as info:
            session.map(lambda handle: handle.read(), [f])
        assert str(path) in str(info.value) and "pass its path" in str(info.value)
        with pytest.raises(azhpc.SerializationError, match="open file"):
            session.submit(lambda: f.read())  # in a closure too
        with pytest.raises(azhpc.SerializationError, match="open file"):
            session.submit(len, f)  # as an argument of submit
    with path.open("rb") as f, pytest.raises(azhpc.SerializationError, match="open file"):
        session.submit(len, f)
    assert session.map(lambda p: Path(p).read_text(), [str(path)]) == ["contents\n"]


def test_map_refuses_bad_arguments_by_name(session):
    with pytest.raises(azhpc.ArgumentTypeError, match=r"map takes the items.*got NoneType"):
        session.map(abs, None)
    with pytest.raises(TypeError, match="iterable"):  # also a TypeError, as builtins.map's
        session.submit_map(abs, 5)
    with pytest.raises(azhpc.ArgumentTypeError, match="map takes a function first"):
        session.map(None, [1])
    for chunksize in (0, -2, 1.5, "2"):
        with pytest.raises(azhpc.ConfigError, match="chunksize must be a whole number >= 1"):
            session.map(abs, [1], chunksize=chunksize)
    assert session.map(abs, [-1, -2], chunksize=np.int64(1)) == [1, 2]


def test_map_blocks_refuses_a_bad_axis_by_name(session):
    a = np.arange(12.0).reshape(3, 4)
    for axis in (1.5, "1", None):
        with pytest.raises(azhpc.ArgumentTypeError, match=r"map_blocks\(axis=...\) takes a whole"):
            session.map_blocks(np.sqrt, a, axis=axis)
    with pytest.raises(azhpc.ConfigError, match="out of range"):
        session.map_blocks(np.sqrt, a, axis=2)
    with pytest.raises(TypeError, match="numpy array"):
        session.map_blocks(np.sqrt, [1.0, 4.0])
    np.testing.assert_array_equal(session.map_blocks(np.sqrt, a, axis=np.int64(1)), np.sqrt(a))


def test_bad_retries_value_is_refused(session):
    with pytest.raises(azhpc.ConfigError, match="retries"):
        session.map(square, [1], retries=-1)


class _TaskBaseException(BaseException):
    """Not an Exception: like KeyboardInterrupt, it slips past ``except Exception``."""


def _raise_keyboard_interrupt(x):
    raise KeyboardInterrupt(f"interrupted at {x}")


def _raise_base_exception(x):
    raise _TaskBaseException(f"base at {x}")


@pytest.mark.parametrize(
    ("function", "remote_type", "message"),
    [
        (_raise_keyboard_interrupt, "KeyboardInterrupt", "interrupted at 1"),
        (_raise_base_exception, "_TaskBaseException", "base at 1"),
    ],
)
def test_task_raising_a_base_exception_is_reported_as_what_it_is(
    session, function, remote_type, message
):
    if session.backend.runs_in_caller and remote_type == "KeyboardInterrupt":
        pytest.skip("in the caller's thread a KeyboardInterrupt is the user's Ctrl-C")
    job = session.submit_map(function, [1])
    with pytest.raises(azhpc.TaskError) as info:
        job.result(timeout=120)
    error = info.value
    assert error.remote_type.rsplit(".", 1)[-1] == remote_type
    assert error.remote_message == message
    assert "out of memory" not in str(error) and "died" not in str(error)
    # The worker was not killed for it, so the task was not run again.
    assert error.attempts == 1 and job.tasks[0].retry_count == 0
    assert session.map(square, [3]) == [9]  # and the session still works


def _rebuilt_only_in(pid):
    import os

    if os.getpid() != pid:
        raise RuntimeError("this object only rebuilds in its own process")
    return _OnlyHere(pid)


class _OnlyHere:
    def __init__(self, pid):
        self.pid = pid

    def __reduce__(self):
        return (_rebuilt_only_in, (self.pid,))


def test_argument_that_cannot_be_rebuilt_on_the_worker_says_so(session):
    import os

    job = session.submit_map(lambda o: o.pid, [_OnlyHere(os.getpid())])
    if session.backend.name in ("debug", "threads"):  # tasks run in this process: no worker
        assert job.result(timeout=60) == [os.getpid()]
        return
    with pytest.raises(azhpc.TaskError) as info:
        job.result(timeout=120)
    error = info.value
    assert error.remote_type == "azhpc.errors.SerializationError"
    assert "could not be rebuilt (unpickled) on the worker" in error.remote_message
    assert "RuntimeError: this object only rebuilds in its own process" in error.remote_message
    assert "Make the module importable on the workers" in error.remote_message
    assert "out of memory" not in str(error)
    assert error.attempts == 1 and job.tasks[0].retry_count == 0
