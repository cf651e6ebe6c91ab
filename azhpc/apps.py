"""Run an application on a pool's nodes: once on every node, or as one MPI run across N nodes.

:func:`run_on_pool` is the classic Batch workload in one call: ship the application's files
through the lake, then run a shell command once per node (a task pinned to each node, taking
all of its slots), or, with ``mpi=True``, as one Batch multi-instance task across N nodes whose
primary starts ``mpirun`` (Open MPI) with one rank per node. The tasks are ordinary azhpc tasks:
the command runs under :class:`NodeCommand` on the node, its output streams to the task's
``stdout.txt``/``stderr.txt`` (live in the per-node view) and comes back, sealed, as a
:class:`NodeRun`; a non-zero exit fails the task with the end of its stderr.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azhpc.errors import AzhpcError, ConfigError

if TYPE_CHECKING:
    from azhpc.core.job import Job
    from azhpc.pools.lifecycle import NodeStatus
    from azhpc.pools.pool import Pool
    from azhpc.pools.spec import PoolSpec

__all__ = ["CommandFailedError", "NodeCommand", "NodeRun", "launch", "run_on_pool"]

#: How much of a command's stdout and stderr comes back in a :class:`NodeRun` (the end).
OUTPUT_TAIL = 64 * 1024
#: The folder, in the task's working folder (or shared folder for MPI), holding the files.
APP_FOLDER = "app"
#: Batch's multi-instance variables, passed on to every MPI rank (``mpirun -x``).
MPI_VARIABLES = (
    "AZ_BATCH_HOST_LIST",
    "AZ_BATCH_NODE_LIST",
    "AZ_BATCH_MASTER_NODE",
    "AZ_BATCH_TASK_SHARED_DIR",
    "AZ_BATCH_JOB_ID",
    "AZ_BATCH_TASK_ID",
    "AZ_BATCH_POOL_ID",
    "AZ_BATCH_ACCOUNT_NAME",
    "PATH",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
)


class CommandFailedError(AzhpcError):
    """A command run by :func:`run_on_pool` exited with a non-zero code on a node."""


@dataclass(frozen=True)
class NodeRun:
    """What a command did on one node (for MPI: on the primary node, all ranks' output).

    Attributes
    ----------
    node
        The node's id.
    exit_code
        The command's exit code (``mpirun``'s for MPI).
    stdout, stderr
        The end of what it printed (at most :data:`OUTPUT_TAIL` bytes each, decoded).
    seconds
        How long it ran.
    ranks
        MPI ranks (1 without MPI).
    """

    node: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    ranks: int = 1

    def __repr__(self) -> str:
        last = self.stdout.rstrip().rsplit("\n", 1)[-1][:60]
        ranks = f", {self.ranks} ranks" if self.ranks > 1 else ""
        return (
            f"NodeRun(node={self.node!r}, exit_code={self.exit_code}, {self.seconds:.1f} s"
            f"{ranks}, stdout ends {last!r})"
        )


@dataclass(frozen=True)
class NodeCommand:
    """The function each ``run_on_pool`` task runs on its node (pickled by reference).

    Attributes
    ----------
    command
        A ``bash -c`` command line, run in the application folder.
    ranks
        MPI ranks across the multi-instance task's nodes (0: no MPI).
    env
        Extra environment variables.
    requirements
        A requirements file in the application folder, installed (``pip --target``) first.
    """

    command: str
    ranks: int = 0
    env: tuple[tuple[str, str], ...] = ()
    requirements: str | None = None

    def __call__(self, index: int) -> NodeRun:
        from azhpc.core.spec import APP_ARCHIVE
        from azhpc.core.worker import JOB_KEY_VARIABLE

        node = os.environ.get("AZ_BATCH_NODE_ID", "local")
        if self.ranks:
            base = Path(os.environ.get("AZ_BATCH_TASK_SHARED_DIR", os.getcwd()))
        else:
            base = Path.cwd()
        app = base / APP_FOLDER
        archive = base / APP_ARCHIVE
        if not app.is_dir():  # an MPI run's coordination command has unpacked it already
            app.mkdir()
            if archive.exists():
                with tarfile.open(archive) as tar:
                    tar.extractall(app, filter="data")
        env = {k: v for k, v in os.environ.items() if k != JOB_KEY_VARIABLE}
        env.update(dict(self.env))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if self.requirements:
            target = app / ".azhpc-packages"
            _run_checked(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--target", str(target), "-r", str(app / self.requirements)],
                cwd=app, env=env, what=f"pip install -r {self.requirements}", node=node,
            )  # fmt: skip
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(target), env.get("PYTHONPATH", "")) if p
            )
        argv = ["/bin/bash", "-c", self.command]
        if self.ranks:
            argv = self._mpirun(app, env, node) + argv
        started = time.monotonic()
        code, out, err = _tee(argv, cwd=app, env=env)
        seconds = time.monotonic() - started
        if code != 0:
            tail = err.strip()[-2000:] or "(nothing on stderr)"
            raise CommandFailedError(
                f"`{self.command}` exited with code {code} on node {node}"
                + (f" ({self.ranks} MPI ranks)" if self.ranks else "")
                + f"; its stderr ends:\n{tail}"
            )
        return NodeRun(node, code, out, err, seconds, ranks=max(self.ranks, 1))

    def _mpirun(self, app: Path, env: dict[str, str], node: str) -> list[str]:
        mpirun = shutil.which("mpirun", path=env.get("PATH"))
        if mpirun is None:
            raise CommandFailedError(
                f"mpirun is not installed on node {node}: an MPI pool needs Open MPI (PoolSpec("
                "..., mpi=True) installs it with the start task; on the emulator, ./dev test "
                "installs Debian's openmpi-bin)"
            )
        hosts = env.get("AZ_BATCH_HOST_LIST") or ",".join(["127.0.0.1"] * self.ranks)
        argv = [mpirun, "-np", str(self.ranks), "--host", hosts, "-wdir", str(app)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-run-as-root")  # containers and emulated nodes run as root
        for name in (*MPI_VARIABLES, *dict(self.env)):
            if name in env:
                argv += ["-x", name]
        return argv


def _tee(argv: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``argv``; copy its stdout/stderr to this process's (the task's files) as they come,
    and return the exit code and the end of each."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    tails: dict[int, collections.deque[bytes]] = {1: collections.deque(), 2: collections.deque()}

    def pump(stream: Any, fd: int) -> None:
        kept = 0
        tail = tails[fd]
        for line in iter(stream.readline, b""):
            os.write(fd, line)  # below sys.stdout: straight into the task's stdout.txt
            tail.append(line)
            kept += len(line)
            while kept > OUTPUT_TAIL and len(tail) > 1:
                kept -= len(tail.popleft())
        stream.close()

    threads = [
        threading.Thread(target=pump, args=(process.stdout, 1), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, 2), daemon=True),
    ]
    for thread in threads:
        thread.start()
    code = process.wait()
    for thread in threads:
        thread.join()
    return (
        code,
        b"".join(tails[1]).decode(errors="replace"),
        b"".join(tails[2]).decode(errors="replace"),
    )


def _run_checked(argv: list[str], *, cwd: Path, env: dict[str, str], what: str, node: str) -> None:
    code, _, err = _tee(argv, cwd=cwd, env=env)
    if code != 0:
        raise CommandFailedError(
            f"{what} failed with code {code} on node {node}; its stderr ends:\n{err[-2000:]}"
        )


# -- the client side -------------------------------------------------------------------------------


def _pack(files: Sequence[Path], requirements: Path | None) -> bytes:
    """The application files as a gzip'd tar: a folder's contents at the top, files by name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in files:
            if path.is_dir():
                for item in sorted(path.rglob("*")):
                    if item.is_file() and "__pycache__" not in item.parts:
                        tar.add(item, arcname=str(item.relative_to(path)), recursive=False)
            else:
                tar.add(path, arcname=path.name, recursive=False)
        if requirements is not None and requirements not in files:
            tar.add(requirements, arcname=requirements.name, recursive=False)
    return buffer.getvalue()


#: What ``files=`` takes: a path, or a list of paths.
Files = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _as_paths(files: Files | None) -> list[Path]:
    if files is None:
        return []
    items = [files] if isinstance(files, str | os.PathLike) else list(files)
    paths = [Path(f).expanduser() for f in items]
    for path in paths:
        if not path.exists():
            raise ConfigError(f"run_on_pool: files= names {str(path)!r}, which does not exist")
    return paths


def _command_line(command: str | os.PathLike[str], files: list[Path]) -> str:
    """A shell command, or the command that runs a script file (shipped with the files)."""
    if isinstance(command, os.PathLike):
        script = Path(command).expanduser()
        if not script.is_file():
            raise ConfigError(f"run_on_pool: the script {str(script)!r} does not exist")
        files.append(script)
        runner = {".py": "python", ".sh": "bash"}.get(script.suffix.lower())
        return f"{runner} {script.name}" if runner else f"./{script.name}"
    if not isinstance(command, str) or not command.strip():
        raise ConfigError(
            "run_on_pool needs a command: a shell command line such as 'python app.py', or the "
            "Path of a script to ship and run"
        )
    return command


def _batch_pool_of(pool: Any) -> Any:
    from azhpc.pools.pool import Pool

    if not isinstance(pool, Pool):
        raise ConfigError(
            "run_on_pool runs on a Batch pool: pass pool=azhpc.Pool(...) (an open pool) or "
            "pool=azhpc.PoolSpec(...) (created for the run, deleted after it); connect to "
            "'emulated' to rehearse on this machine"
        )
    if pool.batch_pool.job_scoped:
        raise ConfigError(
            "run_on_pool pins tasks to the nodes of an existing pool; a job-scoped pool has no "
            "nodes before its job: use azhpc.Pool(spec) without job_scoped=True"
        )
    return pool.batch_pool


def _check_mpi_pool(pool: Pool) -> None:
    """Refuse MPI where Batch cannot run it (before any task is added)."""
    from azhpc.pools.errors import PoolSpecError

    spec = pool.spec
    if spec is not None:
        inter_node, spot, slots = (
            spec.inter_node_communication,
            spec.uses_spot,
            spec.task_slots_per_node,
        )
    else:
        service = pool.batch_pool._call(
            f"get pool {pool.pool_id!r}",
            lambda: pool.batch_pool.account.client().get_pool(pool.pool_id),
        )
        inter_node = bool(service.enable_inter_node_communication)
        spot = bool(service.target_low_priority_nodes)
        slots = int(service.task_slots_per_node or 1)
    if spot:
        raise PoolSpecError(
            "spot_nodes",
            f"pool {pool.pool_id!r} has spot nodes: an MPI run cannot survive one being "
            "preempted; use a pool of dedicated nodes (nodes=N)",
        )
    if not inter_node:
        raise PoolSpecError(
            "inter_node_communication",
            f"pool {pool.pool_id!r} was created without inter-node communication, so its nodes "
            "cannot talk MPI: create it with inter_node_communication=True (and mpi=True)",
        )
    if slots != 1:
        raise PoolSpecError(
            "task_slots_per_node",
            f"pool {pool.pool_id!r} has {slots} task slots per node; Batch runs multi-instance "
            "(MPI) tasks only with task_slots_per_node=1",
        )


def run_on_pool(
    command: str | os.PathLike[str],
    *,
    pool: Pool | PoolSpec,
    files: Files | None = None,
    requirements: str | os.PathLike[str] | None = None,
    mpi: bool = False,
    nodes: int | None = None,
    env: Mapping[str, str] | None = None,
    keep: bool = False,
    progress: bool | None = None,
) -> Job:
    """Run an application on a Batch pool's nodes; return the running :class:`~azhpc.Job`.

    Parameters
    ----------
    command
        A shell command line (run with ``bash -c`` in the folder of the shipped files), or the
        ``Path`` of a script to ship and run (``.py`` with the pool's Python, ``.sh`` with
        bash).
    pool
        An open :class:`azhpc.Pool`, or a :class:`azhpc.PoolSpec`: that pool is created for
        the run and deleted when the run ends (unless ``keep``).
    files
        A folder (its contents), a file, or a list of them, shipped through the lake to every
        node the run uses.
    requirements
        A ``requirements.txt`` installed on each node (``pip install --target``) before the
        command.
    mpi
        Run the command once, as one Batch multi-instance task across ``nodes`` nodes, under
        ``mpirun`` (Open MPI) with one rank per node. The pool needs inter-node communication,
        dedicated nodes only and one task slot per node (``PoolSpec(..., mpi=True)``).
    nodes
        How many nodes to use (default: every node of the pool). Without ``mpi`` the command
        runs once on each; a node that is not usable (e.g. its start task failed) is an error
        naming it, unless ``nodes`` asks for fewer.
    env
        Extra environment variables for the command (passed on to every MPI rank).
    keep
        With a ``PoolSpec``: leave the pool running after the run (it keeps costing money).
    progress
        Show the pool's nodes and the run's progress (``None``: the session's setting).

    Returns
    -------
    Job
        ``job.result()`` is a list of :class:`NodeRun`, one per node in node order, or, with
        ``mpi``, the primary node's :class:`NodeRun` (every rank's output). A failing command
        (or rank) raises :class:`~azhpc.TaskError` with the end of its stderr.

    Raises
    ------
    ConfigError, PoolSpecError, PoolStartError
        Before any task is added: a missing file, a pool that is not a Batch pool, MPI on a
        pool that cannot run it, a node that is not usable.

    Examples
    --------
    >>> spec = azhpc.PoolSpec("app", "Standard_D2s_v5", nodes=3)           # doctest: +SKIP
    >>> runs = azhpc.run_on_pool("hostname", pool=spec).result()          # doctest: +SKIP
    >>> [r.node for r in runs]                                            # doctest: +SKIP
    ['tvmps_0001_d', 'tvmps_0002_d', 'tvmps_0003_d']
    """

    shipped = _as_paths(files)
    line = _command_line(command, shipped)
    requirements_path = None
    if requirements is not None:
        requirements_path = Path(requirements).expanduser()
        if not requirements_path.is_file():
            raise ConfigError(f"run_on_pool: requirements={str(requirements)!r} does not exist")
    if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1):
        raise ConfigError(f"run_on_pool: nodes= must be a whole number >= 1, got {nodes!r}")
    environment = {str(k): str(v) for k, v in (env or {}).items()}
    return launch(
        pool,
        line,
        shipped,
        requirements=requirements_path,
        env=environment,
        mpi=mpi,
        nodes=nodes,
        keep=keep,
        progress=progress,
    )


def launch(
    pool: Pool | PoolSpec,
    line: str,
    shipped: list[Path],
    *,
    requirements: Path | None = None,
    env: dict[str, str] | None = None,
    mpi: bool = False,
    nodes: int | None = None,
    keep: bool = False,
    progress: bool | None = None,
    wrap: Callable[[NodeCommand], Callable[[int], Any]] | None = None,
    gather: Callable[[list[Any]], Any] | None = None,
    name: str | None = None,
) -> Job:
    """:func:`run_on_pool` after its arguments are checked; ``wrap`` turns the node command
    into the function the tasks run, ``gather`` their results into the job's (both default to
    run_on_pool's: the :class:`NodeRun` values). Used by ``%%azrun --mpi``."""
    from azhpc.pools.pool import Pool
    from azhpc.pools.spec import PoolSpec

    owned = None
    if isinstance(pool, PoolSpec):
        owned = Pool(pool, keep=keep, progress=progress)
        target: Pool = owned
    else:
        target = pool  # type: ignore[assignment]
    try:
        batch_pool = _batch_pool_of(target)
        if mpi:
            _check_mpi_pool(target)
        target.start()
        chosen = batch_pool.every_node_or_explain(nodes)
        job = _submit(
            target, chosen, line, shipped, requirements, env or {}, mpi=mpi, wrap=wrap,
            gather=gather, name=name,
        )  # fmt: skip
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    if owned is not None:
        job.add_done_callback(lambda _: threading.Thread(target=owned.close).start())
    _watch_nodes(target, job, progress)
    return job


def _submit(
    pool: Pool,
    chosen: list[NodeStatus],
    line: str,
    shipped: list[Path],
    requirements: Path | None,
    env: dict[str, str],
    *,
    mpi: bool,
    wrap: Callable[[NodeCommand], Callable[[int], Any]] | None,
    gather: Callable[[list[Any]], Any] | None,
    name: str | None,
) -> Job:
    from azhpc.core.spec import Placement
    from azhpc.scatter import run_pieces

    archive = None
    if shipped or requirements is not None:
        data = _pack(shipped, requirements)
        digest = hashlib.sha256(data).hexdigest()[:32]
        store = pool.store
        archive = f"{store.root}/apps/{digest}.tar.gz"
        if not store.fs.exists(archive):
            store.fs.pipe(archive, data)
    command = NodeCommand(
        line,
        ranks=len(chosen) if mpi else 0,
        env=tuple(sorted(env.items())),
        requirements=requirements.name if requirements is not None else None,
    )
    function = wrap(command) if wrap is not None else command
    short = line if len(line) <= 40 else line[:39] + "…"
    if mpi:
        placement = Placement(instances=len(chosen), coordination=_COORDINATION, files=archive)
        return run_pieces(
            pool, function, [0], name=name or f"mpi x{len(chosen)}: {short}",
            gather=gather or (lambda runs: runs[0]), placement=placement,
        )  # fmt: skip
    expected = [n.node_id for n in chosen]
    placement = Placement(affinity=tuple(n.affinity_id for n in chosen), files=archive)
    return run_pieces(
        pool, function, list(range(len(chosen))),
        name=name or f"on {len(chosen)} nodes: {short}",
        gather=gather or (lambda runs: _one_per_node(runs, expected)), placement=placement,
    )  # fmt: skip


#: The multi-instance coordination command: unpack the shipped files on every node.
_COORDINATION = (
    '/bin/bash -c \'cd "$AZ_BATCH_TASK_SHARED_DIR" && mkdir -p app && '
    "if [ -f azhpc-app.tar.gz ]; then tar -xzf azhpc-app.tar.gz -C app; fi'"
)


def _one_per_node(runs: list[NodeRun], expected: list[str]) -> list[NodeRun]:
    ran = [r.node for r in runs]
    if ran != expected:
        raise AzhpcError(
            f"the command was meant to run once on each of {expected} but ran on {ran} (Batch "
            "placed a task on another node than asked); run it again"
        )
    return runs


def _watch_nodes(pool: Pool, job: Job, progress: bool | None) -> None:
    """Show the per-node view of a run while it lasts (see :mod:`azhpc.pools.nodeview`)."""
    from azhpc.pools.nodeview import watch_nodes

    watch_nodes(pool, job, enabled=pool.progress if progress is None else progress)
