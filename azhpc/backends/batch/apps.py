"""Run an application on a pool's nodes: once on every node, or as one MPI run across N nodes.

:func:`run_on_pool` is the classic Batch workload in one call: ship the application's files
through the lake, then run a shell command once per node (a task pinned to each node, taking
all of its slots), or, with ``mpi=True``, as one Batch multi-instance task across N nodes whose
primary starts ``mpirun`` (Open MPI) with one rank per node. The tasks are ordinary azhpc tasks:
the command runs under :class:`~azhpc.backends.batch.node_command.NodeCommand` on the node
(``node_command.py``), and comes back as a :class:`NodeRun`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.node_command import NodeCommand, NodeRun
from azhpc.backends.batch.nodeview import watch_nodes
from azhpc.backends.batch.pool import Pool
from azhpc.backends.batch.pool_body import MPI_USER
from azhpc.core.spec import Placement
from azhpc.errors import AzhpcError, ConfigError, PoolSpecError
from azhpc.pools.spec import PoolSpec
from azhpc.scatter import run_pieces

if TYPE_CHECKING:
    from azhpc.backends.batch.pool import Pool
    from azhpc.backends.batch.pool_nodes import NodeStatus
    from azhpc.core.job import Job
    from azhpc.pools.spec import PoolSpec

__all__ = ["NodeRun", "launch", "run_on_pool"]


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
        accounts = service.user_accounts
        if accounts is not None and MPI_USER not in {a.name for a in accounts}:
            raise PoolSpecError(
                "inter_node_communication",
                f"pool {pool.pool_id!r} has no {MPI_USER!r} user account, the one azhpc runs MPI "
                "ranks as (Batch sets up SSH between nodes only for a pool account with an SSH "
                "key): create the pool with azhpc (PoolSpec(..., mpi=True, "
                "inter_node_communication=True))",
            )
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
        ``mpirun`` (Open MPI, or HPC-X on HPC images; UCX on InfiniBand sizes) with one rank
        per node, as the pool's ``azhpc`` user account (the one Batch sets up SSH between the
        nodes for). The pool needs inter-node communication, dedicated nodes only and one task
        slot per node (``PoolSpec(..., mpi=True)``).
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
    archive = sha256 = None
    if shipped or requirements is not None:
        data = _pack(shipped, requirements)
        sha256 = hashlib.sha256(data).hexdigest()
        digest = sha256[:32]
        store = pool.store
        archive = f"{store.root}/apps/{digest}.tar.gz"
        if not store.fs.exists(archive):
            store.fs.pipe(archive, data)
    command = NodeCommand(
        line,
        ranks=len(chosen) if mpi else 0,
        env=tuple(sorted(env.items())),
        requirements=requirements.name if requirements is not None else None,
        archive_sha256=sha256,
    )
    function = wrap(command) if wrap is not None else command
    short = line if len(line) <= 40 else line[:39] + "…"
    if mpi:
        placement = Placement(
            instances=len(chosen), coordination=_coordination(sha256), files=archive
        )
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


def _coordination(sha256: str | None) -> str:
    """The multi-instance coordination command: unpack the shipped files on every node, once
    their SHA-256 is the one this definition names (whoever can write to the lake can replace
    the archive)."""
    check = (
        f'echo "{sha256}  azhpc-app.tar.gz" | sha256sum -c --quiet - && '
        if sha256 is not None
        else ""
    )
    return (
        '/bin/bash -c \'cd "$AZ_BATCH_TASK_SHARED_DIR" && mkdir -p app && '
        f"if [ -f azhpc-app.tar.gz ]; then {check}tar -xzf azhpc-app.tar.gz -C app; fi'"
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
    """Show the per-node view of a run while it lasts (see :mod:`azhpc.backends.batch.nodeview`)."""

    watch_nodes(pool, job, enabled=pool.progress if progress is None else progress)
