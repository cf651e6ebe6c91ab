"""What :func:`azhpc.run_on_pool` runs on a node: :class:`NodeCommand`, returning a
:class:`NodeRun`.

The command runs in the task's working folder (or, for MPI, under ``mpirun`` on the primary
node) with the application's files unpacked and its requirements installed; its output
streams to the task's ``stdout.txt``/``stderr.txt`` (live in the per-node view) and its end
comes back, sealed, in the :class:`NodeRun`; a non-zero exit raises
:class:`~azhpc.errors.CommandFailedError` with the end of its stderr. Unpickled on the nodes,
so this module imports only what a node has.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azhpc.core.spec import APP_ARCHIVE
from azhpc.errors import CommandFailedError, IntegrityError

__all__ = ["APP_FOLDER", "CommandFailedError", "NodeCommand", "NodeRun"]

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
    "OPAL_PREFIX",
    "UCX_TLS",
    "UCX_NET_DEVICES",
)
#: What the pool's start task recorded about MPI on the node (``pool_body.MPI_RECORD``),
#: relative to ``$AZ_BATCH_NODE_SHARED_DIR``.
MPI_RECORD = "azhpc/mpi.env"


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
    archive_sha256
        The SHA-256 of the shipped files' archive: checked before it is unpacked.
    """

    command: str
    ranks: int = 0
    env: tuple[tuple[str, str], ...] = ()
    requirements: str | None = None
    archive_sha256: str | None = None

    def _check_archive(self, archive: Path) -> None:
        """Refuse an archive that is not the one the client shipped."""
        import hashlib

        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if self.archive_sha256 is not None and digest != self.archive_sha256:
            raise IntegrityError(
                "the application's files (azhpc-app.tar.gz) are not the ones the client "
                "shipped: they were changed in the lake; they are not unpacked"
            )

    def __call__(self, index: int) -> NodeRun:
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
                self._check_archive(archive)
                with tarfile.open(archive) as tar:
                    tar.extractall(app, filter="data")
        env = dict(os.environ)
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
        """``mpirun`` and its options; puts the recorded MPI's paths (and UCX settings on
        InfiniBand) into ``env``."""
        record = read_mpi_record(env)
        mpirun = record.get("AZHPC_MPIRUN") or shutil.which("mpirun", path=env.get("PATH"))
        if mpirun:
            # Its folder on PATH (HPC-X's is nowhere else), after the node's Python's; invoked
            # by absolute path, Open MPI also starts its daemons on the other nodes from the
            # same prefix (mpirun(1): an absolute path "is equivalent to the --prefix option").
            folders = env.get("PATH", "").split(os.pathsep)
            if str(Path(mpirun).parent) not in folders:
                folders.insert(1, str(Path(mpirun).parent))
                env["PATH"] = os.pathsep.join(folders)
        if record.get("AZHPC_MPI_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (record["AZHPC_MPI_LIBRARY_PATH"], env.get("LD_LIBRARY_PATH")) if p
            )
        if record.get("OPAL_PREFIX"):
            env["OPAL_PREFIX"] = record["OPAL_PREFIX"]
        if not mpirun:
            raise CommandFailedError(
                f"mpirun is not installed on node {node}: an MPI pool needs Open MPI (PoolSpec("
                "..., mpi=True) installs it with the start task; on the emulator, ./dev test "
                "installs Debian's openmpi-bin)"
            )
        hosts = env.get("AZ_BATCH_HOST_LIST") or ",".join(["127.0.0.1"] * self.ranks)
        argv = [mpirun, "-np", str(self.ranks), "--host", hosts, "-wdir", str(app)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-run-as-root")  # containers and emulated nodes run as root
        if record.get("AZHPC_MPI_FABRIC") == "infiniband":
            # UCX over InfiniBand (Azure, "Set up Message Passing Interface for HPC"); asked for
            # explicitly, so that a node without it fails instead of falling back to TCP.
            env["UCX_TLS"] = record.get("UCX_TLS", "rc,sm,self")
            if record.get("UCX_NET_DEVICES"):
                env["UCX_NET_DEVICES"] = record["UCX_NET_DEVICES"]
            argv += ["--mca", "pml", "ucx"]
        for name in (*MPI_VARIABLES, *dict(self.env)):
            if name in env:
                argv += ["-x", name]
        return argv


def read_mpi_record(env: dict[str, str]) -> dict[str, str]:
    """The ``KEY=VALUE`` lines the start task wrote to ``$AZ_BATCH_NODE_SHARED_DIR/``
    :data:`MPI_RECORD` (``{}`` without one: a pool azhpc did not create)."""
    shared = env.get("AZ_BATCH_NODE_SHARED_DIR")
    path = Path(shared) / MPI_RECORD if shared else None
    if path is None or not path.is_file():
        return {}
    record = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            record[name.strip()] = value
    return record


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
