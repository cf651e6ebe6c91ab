"""azhpc.Executor (concurrent.futures) and the "azhpc" joblib backend, on every backend."""

from __future__ import annotations

import concurrent.futures
import contextlib

import joblib
import pytest

import azhpc

azhpc.register_joblib_backend()


def test_executor_submit_returns_futures(session):
    with azhpc.Executor(session) as ex:
        futures = [ex.submit(pow, 2, n) for n in range(5)]
        done = concurrent.futures.as_completed(futures, timeout=60)
        assert sorted(f.result() for f in done) == [1, 2, 4, 8, 16]


def test_executor_map_keeps_order_over_several_iterables(session):
    with azhpc.Executor(session) as ex:
        assert list(ex.map(pow, [2, 3, 4], [2, 2, 2], timeout=60)) == [4, 9, 16]


def test_executor_map_raises_task_error_on_iteration(session):
    with azhpc.Executor(session) as ex:
        results = ex.map(lambda x: 1 // x, [1, 0])
        with pytest.raises(azhpc.TaskError, match="ZeroDivisionError"):
            list(results)


def test_executor_retries(session, tmp_path):
    marker = tmp_path / "n"

    def once_then_ok():
        if not marker.exists():
            marker.write_text("x")
            raise RuntimeError("first time")
        return "ok"

    with azhpc.Executor(session, retries=1) as ex:
        assert ex.submit(once_then_ok).result(timeout=60) == "ok"


@pytest.mark.parametrize("chunksize", [0, -1, 1.5, True])
def test_executor_map_refuses_a_bad_chunksize(session, chunksize):
    with azhpc.Executor(session) as ex, pytest.raises(azhpc.ConfigError, match="chunksize") as info:
        ex.map(abs, [1, 2], chunksize=chunksize)
    assert isinstance(info.value, ValueError)  # as concurrent.futures' own executors raise


def test_executor_map_refuses_bad_arguments_by_name(session):
    with azhpc.Executor(session) as ex:
        with pytest.raises(azhpc.ArgumentTypeError, match=r"Executor\.map takes a function"):
            ex.map(5, [1, 2])
        with pytest.raises(TypeError, match=r"iterable.*got NoneType"):
            ex.map(abs, None)
        with pytest.raises(azhpc.ArgumentTypeError, match="takes a function"):
            ex.submit(None)


def test_executor_refuses_work_after_shutdown(session):
    ex = azhpc.Executor(session)
    ex.shutdown()
    with pytest.raises(azhpc.AzhpcError, match="after shutdown"):
        ex.submit(abs, -1)
    assert isinstance(ex, concurrent.futures.Executor)


def test_joblib_backend_runs_parallel_calls(session):
    with joblib.parallel_config(backend="azhpc", pool=session):
        out = joblib.Parallel(n_jobs=-1)(joblib.delayed(pow)(i, 2) for i in range(20))
    assert out == [i * i for i in range(20)]


def test_joblib_backend_uses_default_session(session):
    with joblib.parallel_config(backend="azhpc"):
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3)) == [0, 1, 2]


def test_joblib_backend_raises_the_functions_own_exception(session):
    def bad(i):
        if i == 2:
            raise KeyError("two")
        return i

    with joblib.parallel_config(backend="azhpc", pool=session), pytest.raises(KeyError):
        joblib.Parallel(n_jobs=2)(joblib.delayed(bad)(i) for i in range(4))


def test_scikit_learn_cross_validation_on_the_pool(session):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    expected = cross_val_score(LogisticRegression(), X, y, cv=4, n_jobs=1)
    with contextlib.ExitStack() as stack:
        pool = session
        if session.backend.name == "batch":
            # Batch nodes have only what their start task installed (as on Azure): the
            # estimators unpickle there only once scikit-learn is a requirement of the pool.
            pool = stack.enter_context(
                azhpc.Pool(
                    "azhpc-sklearn",
                    "Standard_D2s_v5",
                    nodes=2,
                    requirements=["scikit-learn"],
                    session=session,
                )
            )
        with joblib.parallel_config(backend="azhpc", pool=pool):
            scores = cross_val_score(LogisticRegression(), X, y, cv=4, n_jobs=-1)
    assert list(scores) == pytest.approx(list(expected))
