"""Shared fixtures: sessions on every backend, small helpers for processes."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import azhpc
from azhpc.backends import register_backend

#: The backends every conformance test runs on ("batch": the Batch backend on the emulated
#: profile, i.e. the real azure-batch SDK against azhpc's Batch emulator, with Azurite;
#: "threads": a backend registered from outside azhpc, as a user's package would, see
#: tests/threads_backend.py).
#: "entra" is the Batch backend on a keyless azure profile (tests/entra_profile.py): HTTPS
#: emulators, Entra ID tokens only, user delegation SAS.
BACKENDS = ("local", "debug", "batch", "threads", "entra")

#: The live tests (tests/live: real pools, real money) run only when asked for by path
#: (`./dev test-live`, or `pytest tests/live`), never with the rest of the suite.
collect_ignore = ["live"]

# Registered by dotted path, the way a plug-in package would: imported on first use.
register_backend("threads", "threads_backend:create_backend")


def batch_available() -> bool:
    """Whether the Batch backend can run here: azure-batch installed and Azurite installed."""
    try:
        import azure.batch  # noqa: F401

        from azhpc.emulator.azurite import find_azurite

        find_azurite()
    except Exception:
        return False
    return True


#: The run's private temporary folder (TMPDIR of this process and of every process it starts,
#: tests/leftovers.py): its path marks the run's processes; removed when the run ends.
_RUN_FOLDER = pytest.StashKey[Path]()
#: The run's private azhpc home (lake, keys, state), in the run's folder.
_TEST_HOME = pytest.StashKey[Path]()
#: What this run (and the processes it started) left at the end: scratch folders
#: (/dev/shm/azhpc-*), live processes, files in its temporary folder.
_LEFT_SCRATCH = pytest.StashKey[list[str]]()
_LEFT_PROCESSES = pytest.StashKey[list[str]]()
_LEFT_FILES = pytest.StashKey[list[str]]()
#: How long the end-of-run check waits for what is still exiting (processes, owners of
#: scratch folders) before it counts it as left behind (AZHPC_TEST_LEFTOVER_GRACE, seconds).
_LEFTOVER_GRACE = float(os.environ.get("AZHPC_TEST_LEFTOVER_GRACE") or 15)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the test run away from the user's own azhpc state, process-wide (sessions opened by
    module-scoped fixtures and subprocesses included): a private lake folder, key ring, no
    config file, and no workshop emulators (``azhpc emulator start``) but the tests' own; and
    away from other runs on this machine: a private temporary folder."""
    import tempfile

    from azhpc.config import config_path
    from tests.leftovers import make_run_folder

    # The live tests (tests/live) read the user's own config file: keep where it is.
    os.environ.setdefault("AZHPC_LIVE_CONFIG", str(config_path()))
    run = make_run_folder()
    config.stash[_RUN_FOLDER] = run
    home = Path(tempfile.mkdtemp(prefix="azhpc-tests-"))
    config.stash[_TEST_HOME] = home
    os.environ["AZHPC_LAKE_ROOT"] = str(home / "lake")
    os.environ["AZHPC_KEY_DIR"] = str(home / "keys")
    os.environ["AZHPC_CONFIG"] = str(home / "no-config.toml")
    os.environ["AZHPC_EMULATOR_STATE"] = str(home / "emulator.json")
    # Every local backend of this run, in this process or any child that inherits the
    # environment, names its scratch folder azhpc-<pid>-<tag>-...: the end-of-run check
    # (pytest_sessionfinish) counts those only, not those of other runs on this machine.
    from azhpc.backends.local.scratch import SCRATCH_TAG_VARIABLE

    os.environ[SCRATCH_TAG_VARIABLE] = f"t{os.getpid()}x{run.name.rsplit('-', 1)[-1]}"
    # Every request to a Batch emulator in this process and every response it gives, checked
    # against Azure's Batch REST specification; violations fail the session and are listed in
    # the terminal summary (tests/contract/plugin.py).
    from tests.contract.plugin import ContractPlugin

    config.pluginmanager.register(ContractPlugin(), "batch-rest-contract")


def _scratch_left_by_this_run() -> list[str]:
    from azhpc.backends.local.scratch import SCRATCH_TAG_VARIABLE, scratch_base

    tag = os.environ.get(SCRATCH_TAG_VARIABLE)
    if not tag:
        return []
    base = Path(scratch_base())
    return sorted(str(p) for p in base.glob(f"azhpc-*-{tag}-*") if not p.is_symlink())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if it left something behind: a scratch folder of this run (or of a process
    it started), a process it started, a file in its temporary folder.

    Everything still open here is closed first (session fixtures are torn down already);
    processes still exiting, and folders whose owner is still alive, get a grace period.
    """
    from azhpc.backends.local.scratch import owner_pid, process_alive
    from azhpc.core import at_exit
    from tests.leftovers import processes_left, temporary_files_left, wait_while

    config = session.config
    run = config.stash.get(_RUN_FOLDER, None)
    if run is None:
        return
    at_exit.release_all()

    def still_exiting() -> bool:
        scratch = _scratch_left_by_this_run()
        if any(process_alive(owner_pid(Path(p).name) or 0) for p in scratch):
            return True  # an owner alive: its exit may remove them yet
        return bool(processes_left(run))

    wait_while(still_exiting, _LEFTOVER_GRACE)
    config.stash[_LEFT_SCRATCH] = _scratch_left_by_this_run()
    config.stash[_LEFT_PROCESSES] = [str(p) for p in processes_left(run)]
    config.stash[_LEFT_FILES] = temporary_files_left(run, keep=[config.stash[_TEST_HOME]])
    left = any(config.stash[k] for k in (_LEFT_SCRATCH, _LEFT_PROCESSES, _LEFT_FILES))
    if left and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List what this run left behind (and fail it, see pytest_sessionfinish)."""
    from azhpc.backends.local.scratch import owner_pid, process_alive

    stash = terminalreporter.config.stash
    left = stash.get(_LEFT_SCRATCH, [])
    if left:
        terminalreporter.write_sep("=", f"{len(left)} scratch folder(s) left behind", red=True)
        for path in left:
            pid = owner_pid(Path(path).name)
            state = "still running" if pid and process_alive(pid) else "ended without removing it"
            terminalreporter.write_line(f"{path} (owner pid {pid}: {state})", red=True)
    processes = stash.get(_LEFT_PROCESSES, [])
    if processes:
        terminalreporter.write_sep(
            "=", f"{len(processes)} process(es) of this run still running", red=True
        )
        for line in processes:
            terminalreporter.write_line(line, red=True)
    files = stash.get(_LEFT_FILES, [])
    if files:
        terminalreporter.write_sep(
            "=", f"{len(files)} temporary file(s) or folder(s) left behind", red=True
        )
        for line in files:
            terminalreporter.write_line(line, red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close what is still open (sessions, emulators), then remove the run's temporary folder
    (its azhpc home and pytest's tmp_path folders included)."""
    import shutil

    from azhpc.core import at_exit

    run = config.stash.get(_RUN_FOLDER, None)
    if run is None:
        return
    at_exit.release_all()
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture(scope="session")
def batch_session() -> Iterator[azhpc.Session]:
    """One ``emulated`` session on the Batch backend (2 nodes, 2 slots each), shared by the
    tests that use it: Azurite, the Batch emulator and the pool start once."""
    if not batch_available():
        pytest.skip("the Batch backend needs azure-batch and Azurite (./dev test installs both)")
    with azhpc.connect("emulated", workers=2, slots=2, progress=False) as s:
        yield s


@pytest.fixture(scope="session")
def entra_session() -> Iterator[azhpc.Session]:
    """One keyless ``azure`` session (no key anywhere: Entra ID tokens over HTTPS to Azurite
    and the Batch emulator) on a 2-node pool with 2 slots each, shared like ``batch_session``."""
    if not batch_available():
        pytest.skip("the Batch backend needs azure-batch and Azurite (./dev test installs both)")
    pytest.importorskip("cryptography")
    from tests.entra_profile import keyless_profile

    with (
        keyless_profile() as profile,
        profile.connect(progress=False) as parent,
        azhpc.Pool(
            "azhpc-entra",
            "Standard_D2s_v5",
            nodes=2,
            task_slots_per_node=2,
            session=parent,
            progress=False,
        ) as pool,
    ):
        yield pool


@pytest.fixture(params=BACKENDS)
def session(request: pytest.FixtureRequest) -> Iterator[azhpc.Session]:
    """A session on each backend (2 local workers, or 2 Batch nodes), closed after the test
    (the Batch session is shared: it is made the default again for each test)."""
    if request.param in ("batch", "entra"):
        from azhpc.session import _make_default

        s = request.getfixturevalue(f"{request.param}_session")
        _make_default(s)
        yield s
        return
    with azhpc.connect(workers=2, backend=request.param, progress=False) as s:
        yield s


@pytest.fixture
def local_session() -> Iterator[azhpc.Session]:
    """A local session with 2 workers, closed after the test."""
    with azhpc.connect(workers=2, progress=False) as s:
        yield s


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.01)


def process_exists(pid: int) -> bool:
    """True while a process with this pid exists (and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def communicate_or_kill(proc, timeout: float):
    """``proc.communicate(timeout=...)``, killing ``proc`` if it times out (so that a failing
    test never leaves a client and its workers running)."""
    import subprocess

    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def azure_profile_env(host: azhpc.Session) -> dict[str, str]:
    """The ``AZHPC_*`` settings that point an ``azure``-profile client (a subprocess) at an
    emulated session's Azurite and Batch emulator, as if they were an Azure account."""
    batch = host.backend.account.emulator
    return {
        "AZHPC_CONNECTION_STRING": host.lake.storage_options()["connection_string"],
        "AZHPC_CONTAINER": host.lake.settings.container,
        "AZHPC_BATCH_URL": batch.url,
        "AZHPC_BATCH_ACCOUNT_NAME": batch.account_name,
        "AZHPC_BATCH_ACCOUNT_KEY": batch.account_key,
    }


@contextlib.contextmanager
def azure_client(host: azhpc.Session, source: str, *args: str, cwd: Path) -> Iterator[str]:
    """Run ``source`` (a client script that prints its job id, then waits) in a subprocess on
    the ``azure`` profile pointed at ``host``'s emulators; yield the job id; SIGKILL it on
    exit from the block."""
    import subprocess
    import sys

    client = subprocess.Popen(
        [sys.executable, "-c", source, *args],
        env={**os.environ, **azure_profile_env(host)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        job_id = client.stdout.readline().strip()
        assert job_id.startswith("azhpc-"), communicate_or_kill(client, 30)
        yield job_id
    finally:
        client.kill()
        client.wait(timeout=30)
