"""CPython's own ``concurrent.futures`` tests, run in place on :class:`azhpc.Executor`.

The module is the interpreter's ``test.test_concurrent_futures`` or, where the interpreter's
``test`` package lacks it (pyenv builds), Debian's copy in ``/usr/lib/python3.<minor>/test``
(``apt-get install libpython3.11-testsuite``; ``./dev test`` installs it). Its executor test
mixins run with an ``executor_type`` that builds an :class:`azhpc.Executor` on one local
session; the documented differences (``docs/compatibility.md``) are strict expected failures,
so a difference that goes away shows up. Without the module the tests are skipped.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import azhpc


def _locate() -> Path | None:
    """The installed ``test_concurrent_futures.py``, or ``None``."""
    try:
        spec = importlib.util.find_spec("test.test_concurrent_futures")
    except ImportError:
        spec = None
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin)
    debian = Path(f"/usr/lib/python3.{sys.version_info.minor}/test/test_concurrent_futures.py")
    return debian if debian.is_file() else None


def _load(path: Path) -> ModuleType:
    """Import the file in place under its own name (the workers get its functions by value)."""
    import cloudpickle

    spec = importlib.util.spec_from_file_location("cpython_test_concurrent_futures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module


SOURCE = _locate()
if SOURCE is None:
    pytest.skip(
        "CPython's test_concurrent_futures is not installed (neither in this interpreter's "
        f"test package nor in /usr/lib/python3.{sys.version_info.minor}/test): "
        f"apt-get install libpython3.{sys.version_info.minor}-testsuite, or ./dev test",
        allow_module_level=True,
    )
cf = _load(SOURCE)

_session: azhpc.Session | None = None


@pytest.fixture(scope="module", autouse=True)
def _azhpc_session() -> Iterator[azhpc.Session]:
    """One local session for the whole suite: 2 workers with 4 slots each (the tests sleep
    much more than they compute, and several need 5 calls at once)."""
    global _session
    with azhpc.connect(workers=2, slots=4, progress=False) as session:
        _session = session
        yield session
        _session = None


class AzhpcSuiteExecutor(azhpc.Executor):
    """The suite's ``executor_type``: an :class:`azhpc.Executor` on the module's session.

    ``max_workers`` and ``mp_context`` are accepted and ignored: the session decides how many
    calls run at once and how its workers start. Any other argument (``initializer``) is
    refused, as ``azhpc.Executor`` refuses it.
    """

    def __init__(self, max_workers: int | None = None, mp_context: Any = None) -> None:
        assert _session is not None, "the module's session fixture opens it"
        super().__init__(_session)


class AzhpcBaseTestCase(cf.BaseTestCase):
    """The suite's base test case without ``support.reap_children()``: that reaps *any* dead
    child of this process, and this test run has others (the Batch emulator's task
    processes), which their own ``Popen`` objects wait for."""

    def tearDown(self) -> None:
        cf.threading_helper.threading_cleanup(*self._thread_key)


class AzhpcMixin(cf.ExecutorMixin):
    executor_type = AzhpcSuiteExecutor


def differs(reason: str, raises: type[BaseException] = AssertionError) -> pytest.MarkDecorator:
    """A documented difference from the standard executors (docs/compatibility.md): the test
    must fail, and with ``raises`` (so that a hang or another error is still a failure)."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=reason)


TASK_ERROR = differs(
    "result() raises azhpc.TaskError (the call's exception as remote_exception, with its "
    "remote traceback), not the exception itself",
    raises=azhpc.TaskError,
)
BY_NAME = differs("runs a script that imports the executor by its name from concurrent.futures")
ONE_JOB_MAP = differs(
    "Executor.map runs all calls as one job: its results arrive together, so a timeout "
    "yields none of them"
)
MAP_KEEPS_RESULTS = differs(
    "Executor.map's results are one job's result, which keeps them (job.result() can be read again)"
)
NO_MAX_WORKERS = differs("azhpc.Executor has no max_workers: the session's workers decide")
NO_INITIALIZER = differs(
    "azhpc.Executor has no initializer: the workers are the session's, shared by every "
    "executor and job",
    raises=TypeError,
)
PICKLED_AT_SUBMIT = differs(
    "submit() pickles the call in the caller: a call that cannot be pickled raises "
    "azhpc.SerializationError there, not from result()",
    raises=azhpc.SerializationError,
)
NO_PROCESS_POOL = differs(
    "reads ProcessPoolExecutor internals (_executor_manager_thread)", raises=AttributeError
)


def _mark(base: type, marks: dict[str, pytest.MarkDecorator]) -> dict[str, Any]:
    """Class attributes: ``base``'s test methods named in ``marks``, with their mark."""
    return {name: mark(getattr(base, name)) for name, mark in marks.items()}


class TestAzhpcExecutor(AzhpcMixin, cf.ExecutorTest, AzhpcBaseTestCase):
    locals().update(
        _mark(
            cf.ExecutorTest,
            {
                "test_map_exception": TASK_ERROR,
                "test_map_timeout": ONE_JOB_MAP,
                "test_free_reference": MAP_KEEPS_RESULTS,
                "test_max_workers_negative": NO_MAX_WORKERS,
            },
        )
    )


class TestAzhpcShutdown(AzhpcMixin, cf.ExecutorShutdownTest, AzhpcBaseTestCase):
    locals().update(
        _mark(
            cf.ExecutorShutdownTest,
            {
                "test_interpreter_shutdown": BY_NAME,
                "test_submit_after_interpreter_shutdown": BY_NAME,
                "test_hang_gh83386": BY_NAME,
            },
        )
    )


class TestAzhpcWait(AzhpcMixin, cf.WaitTests, AzhpcBaseTestCase):
    pass


class TestAzhpcAsCompleted(AzhpcMixin, cf.AsCompletedTests, AzhpcBaseTestCase):
    pass


class TestAzhpcInitializer(AzhpcMixin, cf.InitializerMixin, AzhpcBaseTestCase):
    locals().update(_mark(cf.InitializerMixin, {"test_initializer": NO_INITIALIZER}))


class TestAzhpcFailingInitializer(AzhpcMixin, cf.FailingInitializerMixin, AzhpcBaseTestCase):
    locals().update(_mark(cf.FailingInitializerMixin, {"test_initializer": NO_INITIALIZER}))


class TestAzhpcDeadlock(AzhpcMixin, cf.ExecutorDeadlockTest, AzhpcBaseTestCase):
    """Crashes and hostile pickles in every place: each call must fail, never hang.

    The standard executors raise BrokenProcessPool (the pool is unusable afterwards); azhpc
    runs a call whose worker died again on a new worker, then raises TaskError with
    WorkerLostError, and the session keeps working.
    """

    ctx = None  # the mixin passes mp_context=get_context(); the default one, ignored

    locals().update(
        _mark(
            cf.ExecutorDeadlockTest,
            {
                "test_error_at_task_pickle": PICKLED_AT_SUBMIT,
                "test_exit_at_task_unpickle": TASK_ERROR,
                "test_error_at_task_unpickle": TASK_ERROR,
                "test_crash_at_task_unpickle": TASK_ERROR,
                "test_crash_during_func_exec_on_worker": TASK_ERROR,
                "test_exit_during_func_exec_on_worker": TASK_ERROR,
                "test_error_during_func_exec_on_worker": TASK_ERROR,
                "test_crash_during_result_pickle_on_worker": TASK_ERROR,
                "test_exit_during_result_pickle_on_worker": TASK_ERROR,
                "test_error_during_result_pickle_on_worker": TASK_ERROR,
                "test_error_during_result_unpickle_in_result_handler": TASK_ERROR,
                "test_exit_during_result_unpickle_in_result_handler": TASK_ERROR,
                "test_shutdown_deadlock": TASK_ERROR,
                "test_shutdown_deadlock_pickle": NO_PROCESS_POOL,
            },
        )
    )
