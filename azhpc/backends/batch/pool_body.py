"""A ``PoolSpec`` in the shape Batch wants: the REST ``PoolAddParameter`` body (the SDK's
``BatchPoolCreateOptions``), and the start task that prepares every node.

The dict uses the REST (camelCase) names, so it is both the request body and what
``azure.batch.models.BatchPoolCreateOptions(the_dict)`` accepts. No Azure import here.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import os
import secrets
import shlex
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.node_wheel import client_pins
from azhpc.pools.autoscale import (
    IDLE_SHUTDOWN_MINUTES,
    MIN_EVALUATION_MINUTES,
    Autoscale,
    idle_shutdown_formula,
)
from azhpc.pools.catalog import price_table
from azhpc.version import __version__

if TYPE_CHECKING:
    from azhpc.pools.spec import PoolSpec

__all__ = [
    "APT_LOCK_TIMEOUT",
    "CREATED",
    "CREATED_BY",
    "ENVIRONMENT_RECORD",
    "HPCX_INIT_GLOB",
    "INFINIBAND_SYSFS",
    "MPI_RECORD",
    "MPI_USER",
    "OWNER",
    "SESSION",
    "mpi_setup_lines",
    "mpi_user_account",
    "ownership_metadata",
    "resolve_idle_shutdown",
    "start_task_command_line",
    "start_task_script",
    "to_batch_pool",
]

#: Where the start task records the node's Python, cloudpickle and azhpc versions (JSON), for
#: the client's environment-parity check. Relative to ``$AZ_BATCH_NODE_SHARED_DIR``.
ENVIRONMENT_RECORD = "azhpc/environment.json"

#: Where the start task of an MPI pool records how to run ``mpirun`` on the node (``KEY=VALUE``
#: lines: ``AZHPC_MPIRUN``, ``AZHPC_MPI_LIBRARY_PATH``, ``OPAL_PREFIX``, ``AZHPC_MPI_FABRIC`` and,
#: on InfiniBand, ``UCX_TLS`` / ``UCX_NET_DEVICES``), read by the node command. Relative to
#: ``$AZ_BATCH_NODE_SHARED_DIR``.
MPI_RECORD = "azhpc/mpi.env"
#: HPC-X's init script on Azure's HPC images (``/opt/hpcx-<version>-<compiler>-...``). Their MPI
#: is otherwise reached through environment modules (``module load mpi/hpcx``), and ``module``
#: is a shell function of login shells that Batch tasks do not have; sourcing the script and
#: calling ``hpcx_load`` is HPC-X's own way (NVIDIA HPC-X docs, "Installing and Loading HPC-X":
#: ``source $HPCX_HOME/hpcx-init.sh; hpcx_load``).
HPCX_INIT_GLOB = "/opt/hpcx-*/hpcx-init.sh"
#: Where Linux lists InfiniBand devices (``mlx5_ib0`` or ``mlx5_0`` on Azure's SR-IOV sizes).
INFINIBAND_SYSFS = "/sys/class/infiniband"
#: UCX transports for MPI on InfiniBand: reliable connection, shared memory, loopback (Azure,
#: "Set up Message Passing Interface for HPC": HPC-X and Open MPI with ``-mca pml ucx``,
#: ``UCX_TLS`` and ``UCX_NET_DEVICES=<device>:1``).
UCX_TLS = "rc,sm,self"
#: The pool user account MPI ranks run as. Batch sets up password-less SSH between nodes only
#: for a pool user account with an SSH key, and only with inter-node communication:
#: BatchService.json (2025-06-01), ``LinuxUserConfiguration.sshPrivateKey``: "The private key is
#: used to automatically configure asymmetric-key based authentication for SSH between Compute
#: Nodes in a Linux Pool when the Pool's enableInterNodeCommunication property is true ... If
#: not specified, password-less SSH is not configured between Compute Nodes". mpirun starts
#: the ranks of the other nodes over SSH, so the multi-instance task runs as this account
#: (``userIdentity.username``); the auto-user has no such documented guarantee.
MPI_USER = "azhpc"

#: Pool metadata (Batch ``metadata`` name/value pairs, which "the Batch service does not assign
#: any meaning to": azure-batch's ``BatchMetadataItem``) that azhpc puts on every pool it
#: creates, so that ``azhpc pools list`` finds the pools a killed client left running.
CREATED_BY = "azhpc-created-by"
#: ``user@host`` of the client that created the pool.
OWNER = "azhpc-owner"
#: The creating client's session (host, process and a random tag; the job id for a job's pool).
SESSION = "azhpc-session"
#: When the client created the pool (UTC, ISO 8601).
CREATED = "azhpc-created"

#: Seconds apt-get waits for the dpkg lock: at first boot unattended-upgrades often holds it,
#: and apt-get would otherwise fail at once ("Could not get lock /var/lib/dpkg/lock-frontend").
APT_LOCK_TIMEOUT = 600

#: This client process's session tag (one per process).
_SESSION_TAG = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def ownership_metadata(job_id: str | None = None) -> dict[str, str]:
    """The metadata that marks a pool as azhpc's: creator, ``user@host``, session and time.

    Parameters
    ----------
    job_id
        The Batch job a job-scoped pool is created for (recorded as its session).
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return {
        CREATED_BY: "azhpc",
        OWNER: f"{user}@{socket.gethostname()}",
        SESSION: job_id or _SESSION_TAG,
        CREATED: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def resolve_idle_shutdown(spec: PoolSpec, *, emulated: bool) -> int | None:
    """The idle guard of a pool azhpc creates from ``spec``: its ``idle_shutdown_minutes``,
    with ``"auto"`` as :data:`~azhpc.pools.autoscale.IDLE_SHUTDOWN_MINUTES` on Azure and none
    on the emulator; none for autoscaled pools (their policy decides)."""
    if spec.autoscale is not None:
        return None
    minutes = spec.idle_shutdown_minutes
    if minutes == "auto":
        return None if emulated else IDLE_SHUTDOWN_MINUTES
    return minutes if isinstance(minutes, int) else None


def _default_azhpc_requirement() -> str:
    return f"azhpc=={__version__}"


def _cloudpickle_requirement() -> str:
    """cloudpickle pinned to the client's version (payloads must unpickle on the nodes)."""
    from importlib import metadata

    try:
        return f"cloudpickle=={metadata.version('cloudpickle')}"
    except metadata.PackageNotFoundError:
        return "cloudpickle"


def _iso_minutes(minutes: int) -> str:
    return f"PT{minutes}M" if minutes < 60 or minutes % 60 else f"PT{minutes // 60}H"


def start_task_script(
    spec: PoolSpec,
    *,
    azhpc_requirement: str | None = None,
    wheel_file: str | None = None,
    wheel_sha256: str | None = None,
) -> str:
    """The bash script the start task runs on each node as it joins the pool.

    It installs uv, a Python of ``spec.python`` in a virtual environment under the node's
    shared folder (conda/micromamba instead when ``requirements`` is an ``environment.yml``),
    then azhpc, cloudpickle and the requirements, and records the versions in
    ``$AZ_BATCH_NODE_SHARED_DIR/azhpc/environment.json``.

    Parameters
    ----------
    spec
        The pool.
    azhpc_requirement
        How pip finds azhpc on the node (default ``azhpc==<this version>``; a wheel URL with
        a read-only SAS works too).
    wheel_file
        The client's azhpc wheel (:mod:`~azhpc.backends.batch.node_wheel`), a resource file of
        the start task in its working folder: installed from there, with cloudpickle, numpy,
        pandas and pyarrow at the client's versions. Takes precedence over
        ``azhpc_requirement``.
    wheel_sha256
        The wheel's SHA-256: the start task refuses a download that does not have it.

    Returns
    -------
    str
    """
    azhpc_req = azhpc_requirement or _default_azhpc_requirement()
    check_wheel: list[str] = []
    if wheel_file is not None:
        # Batch downloads a start task's resource files into its working folder, where the
        # command runs; the script does not change folder.
        azhpc_req = f"./{wheel_file}"
        if wheel_sha256 is not None:
            check_wheel = [
                "# the wheel is the client's (the lake may have been written by others)",
                f"if ! echo {shlex.quote(f'{wheel_sha256}  {wheel_file}')} "
                "| sha256sum -c --quiet -; then",
                f"  echo 'azhpc: {wheel_file} is not the wheel the client staged: it was "
                "changed in the lake; not installed' >&2",
                "  exit 1",
                "fi",
            ]
    q = shlex.quote
    lines = [
        "#!/usr/bin/env bash",
        f"# azhpc start task for pool {spec.pool_id}: runs on every node as it joins the pool,",
        "# as the pool-wide admin auto-user; tasks wait until it has succeeded.",
        "set -euo pipefail",
        'ROOT="$AZ_BATCH_NODE_SHARED_DIR/azhpc"',
        'ENV_DIR="$ROOT/env"',
        'mkdir -p "$ROOT/bin"',
        "# 1. uv, one static binary that installs Python builds and packages",
        'curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR="$ROOT/bin" '
        "UV_NO_MODIFY_PATH=1 sh",
        'export UV_PYTHON_INSTALL_DIR="$ROOT/python"',
    ]
    pins = client_pins() if wheel_file is not None else [_cloudpickle_requirement()]
    packages = [azhpc_req, *pins]
    if spec.mpi:
        packages.append("mpi4py>=4")
    apt = list(spec.apt_packages)
    if spec.mpi and not spec.image.is_hpc:  # HPC images ship their MPI libraries
        apt += [p for p in ("openmpi-bin", "libopenmpi-dev") if p not in apt]
    system: list[str] = []
    if apt:
        # At first boot unattended-upgrades can hold the dpkg lock, and apt-get (unlike apt)
        # fails at once; `-o DPkg::Lock::Timeout=N` makes it wait up to N seconds (apt >= 1.9.11;
        # Ubuntu 22.04 has 2.4; see "Waiting for apt locks without the hacky bash scripts",
        # blog.sinjakli.co.uk, 2021).
        apt_get = f"apt-get -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"
        system = [
            f"# 0. system packages: {' '.join(apt)}",
            "export DEBIAN_FRONTEND=noninteractive",
            f"{apt_get} update -qq",
            f"{apt_get} install -y -qq --no-install-recommends {' '.join(q(p) for p in apt)}",
        ]
    if spec.mpi:  # before step 3: mpi4py builds with the mpicc this puts on PATH
        system += mpi_setup_lines(spec)
    lines[6:6] = system + check_wheel
    requirements = spec.requirements
    if isinstance(requirements, Path) and requirements.suffix.lower() in (".yml", ".yaml"):
        lines += [
            f"# 2. the conda environment from {requirements.name}, with Python {spec.python}",
            "curl -Ls https://micro.mamba.pm/api/micromamba/linux-64/latest | "
            'tar -xj -C "$ROOT" bin/micromamba',
            "cat > \"$ROOT/environment.yml\" <<'AZHPC_ENVIRONMENT_YML'",
            requirements.read_text(encoding="utf-8").rstrip("\n"),
            "AZHPC_ENVIRONMENT_YML",
            f'"$ROOT/bin/micromamba" create -y -p "$ENV_DIR" -f "$ROOT/environment.yml" '
            f"{q('python=' + spec.python)} pip",
            "# 3. azhpc and cloudpickle into it",
            f'"$ROOT/bin/uv" pip install --python "$ENV_DIR/bin/python" '
            f"{' '.join(q(p) for p in packages)}",
        ]
    else:
        lines += [
            f"# 2. Python {spec.python} (the client's major.minor) in a virtual environment,",
            "# made afresh (--clear) when the start task runs again (a retry, a reboot)",
            f'"$ROOT/bin/uv" venv --clear --python {q(spec.python)} "$ENV_DIR"',
        ]
        # pip in the environment: run_on_pool(requirements=...) runs `python -m pip` there
        packages.append("pip")
        if isinstance(requirements, Path):
            lines += [
                f"# the user's {requirements.name}",
                "cat > \"$ROOT/requirements.txt\" <<'AZHPC_REQUIREMENTS_TXT'",
                requirements.read_text(encoding="utf-8").rstrip("\n"),
                "AZHPC_REQUIREMENTS_TXT",
            ]
        listed = [] if isinstance(requirements, Path) else list(requirements)
        install = " ".join(q(p) for p in [*packages, *listed])
        if isinstance(requirements, Path):
            install += ' -r "$ROOT/requirements.txt"'
        lines += [
            "# 3. azhpc, cloudpickle and the user's requirements",
            f'"$ROOT/bin/uv" pip install --python "$ENV_DIR/bin/python" {install}',
        ]
    lines += [
        "# 4. the node's own signing key (its outcomes are signed with it; the private key stays",
        "# outside the folders Batch serves) and the record of what was installed, with the",
        "# public key, for the client's environment check",
        '"$ENV_DIR/bin/python" -m azhpc.worker prepare-node '
        f'"$AZ_BATCH_NODE_SHARED_DIR/{ENVIRONMENT_RECORD}"',
    ]
    return "\n".join(lines) + "\n"


def mpi_user_account() -> dict[str, Any]:
    """The pool's :data:`MPI_USER` account (REST ``UserAccount``), with a key pair made for this
    pool: an unencrypted RSA key that Batch places, with its public half, in the account's
    ``~/.ssh`` on every node. The password (required by the API) is random and never used.

    Raises
    ------
    ImportError
        ``cryptography`` is missing (it comes with azure-identity: ``pip install azhpc[azure]``).
    """
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError as e:  # pragma: no cover - installed with azure-identity
        raise ImportError(
            "an MPI pool needs an SSH key made by 'cryptography': pip install 'azhpc[azure]'"
        ) from e
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY": any OpenSSH
        serialization.NoEncryption(),  # "The private key must not be password protected"
    ).decode()
    return {
        "name": MPI_USER,
        "password": secrets.token_urlsafe(24),
        "elevationLevel": "nonadmin",
        "linuxUserConfiguration": {"sshPrivateKey": private},
    }


def mpi_setup_lines(
    spec: PoolSpec,
    *,
    required: bool = True,
    hpcx_init_glob: str = HPCX_INIT_GLOB,
    infiniband_sysfs: str = INFINIBAND_SYSFS,
) -> list[str]:
    """The start-task lines that find ``mpirun`` and record it in :data:`MPI_RECORD`.

    On an HPC image HPC-X's init script puts its ``mpirun`` (and ``mpicc``, which building
    mpi4py needs) on the start task's PATH; elsewhere Open MPI from apt is on PATH. On a size
    with SR-IOV InfiniBand (the catalog's ``rdma`` and ``sriov``) the record also asks for UCX
    over the node's first InfiniBand device, or says TCP when the node shows none.

    Parameters
    ----------
    spec
        The pool.
    required
        Fail the start task when no ``mpirun`` is found (``False`` on emulated nodes).
    hpcx_init_glob, infiniband_sysfs
        Where to look (tests point them at fakes).
    """
    size = price_table().get(spec.vm_size)
    infiniband = size is not None and size.rdma and size.sriov
    lines = [
        "# MPI: find mpirun (HPC images: HPC-X, behind its init script, as Batch tasks have no",
        "# `module` command) and record it for run_on_pool, with UCX on InfiniBand",
        f'MPI_RECORD="$AZ_BATCH_NODE_SHARED_DIR/{MPI_RECORD}"',
        'mkdir -p "$(dirname "$MPI_RECORD")"',
        f"HPCX_INIT=$(ls -d {hpcx_init_glob} 2>/dev/null | sort -V | tail -n 1 || true)",
        'if [ -n "$HPCX_INIT" ]; then',
        '  set +u; . "$HPCX_INIT"; hpcx_load; set -u',
        "fi",
        "MPIRUN=$(command -v mpirun || true)",
    ]
    if required:
        lines += [
            'if [ -z "$MPIRUN" ]; then',
            f'  echo "azhpc: no mpirun on this node (no {hpcx_init_glob}, no Open MPI on PATH)"'
            " >&2",
            "  exit 1",
            "fi",
        ]
    lines += [
        "{",
        '  echo "AZHPC_MPIRUN=$MPIRUN"',
        '  echo "AZHPC_MPI_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"',
        '  if [ -n "${OPAL_PREFIX:-}" ]; then echo "OPAL_PREFIX=$OPAL_PREFIX"; fi',
    ]
    if infiniband:
        lines += [
            f"  IB_DEVICE=$(ls {infiniband_sysfs} 2>/dev/null | sort | head -n 1 || true)",
            '  if [ -n "$IB_DEVICE" ]; then',
            '    echo "AZHPC_MPI_FABRIC=infiniband"',
            f'    echo "UCX_TLS={UCX_TLS}"',
            '    echo "UCX_NET_DEVICES=$IB_DEVICE:1"',
            "  else",
            '    echo "AZHPC_MPI_FABRIC=tcp"',
            f'    echo "azhpc: {spec.vm_size} has InfiniBand but no device in {infiniband_sysfs}:'
            ' MPI will run over TCP" >&2',
            "  fi",
        ]
    else:
        lines.append('  echo "AZHPC_MPI_FABRIC=tcp"')
    lines += ['} > "$MPI_RECORD.tmp"', 'mv "$MPI_RECORD.tmp" "$MPI_RECORD"']
    return lines


def start_task_command_line(script: str) -> str:
    """The start task's ``commandLine``: Batch does not run it in a shell, so bash decodes the
    script (base64, no quoting pitfalls) into the task's working folder and runs it."""
    encoded = base64.b64encode(script.encode()).decode()
    return (
        f"/bin/bash -c 'echo {encoded} | base64 -d > azhpc-start-task.sh && "
        "exec /bin/bash azhpc-start-task.sh'"
    )


def to_batch_pool(
    spec: PoolSpec,
    *,
    azhpc_requirement: str | None = None,
    wheel: Mapping[str, str] | None = None,
    wheel_sha256: str | None = None,
    metadata: Mapping[str, str] | None = None,
    idle_shutdown_minutes: int | None = None,
) -> dict[str, Any]:
    """The REST ``PoolAddParameter`` body for ``spec`` (the SDK's ``BatchPoolCreateOptions``).

    Parameters
    ----------
    spec
        A validated pool specification.
    azhpc_requirement
        How the nodes get azhpc (see :func:`start_task_script`).
    wheel
        The REST ``ResourceFile`` (``httpUrl``, ``filePath``) of the client's azhpc wheel
        (:meth:`~azhpc.backends.batch.node_wheel.WheelStager.resource_file`): the start task
        downloads it and installs azhpc from it (how nodes on Azure get azhpc).
    wheel_sha256
        The wheel's SHA-256, checked by the start task before installing it.
    metadata
        More pool metadata, e.g. :func:`ownership_metadata` (the client adds it when it
        creates the pool).
    idle_shutdown_minutes
        A fixed-size pool gets the idle guard's autoscale formula instead of fixed targets
        (:func:`~azhpc.pools.autoscale.idle_shutdown_formula`; see
        :func:`resolve_idle_shutdown`).

    Returns
    -------
    dict
        JSON-able; ``azure.batch.models.BatchPoolCreateOptions(result)`` builds the SDK model.
    """
    vm_config: dict[str, Any] = {
        "imageReference": spec.image.to_batch(),
        "nodeAgentSKUId": spec.image.node_agent_sku_id,
    }
    if spec.container_image:
        vm_config["containerConfiguration"] = {
            "type": "dockerCompatible",
            "containerImageNames": [spec.container_image],
        }
    body: dict[str, Any] = {
        "id": spec.pool_id,
        "vmSize": spec.vm_size,
        "virtualMachineConfiguration": vm_config,
        "taskSlotsPerNode": spec.task_slots_per_node,
        "enableInterNodeCommunication": spec.inter_node_communication,
    }
    if spec.autoscale is None and idle_shutdown_minutes is not None:
        body["enableAutoScale"] = True
        body["autoScaleFormula"] = idle_shutdown_formula(
            spec.nodes, spec.spot_nodes, idle_shutdown_minutes
        )
        body["autoScaleEvaluationInterval"] = _iso_minutes(MIN_EVALUATION_MINUTES)
    elif spec.autoscale is None:
        body["targetDedicatedNodes"] = spec.nodes
        body["targetLowPriorityNodes"] = spec.spot_nodes
    else:
        if isinstance(spec.autoscale, Autoscale):
            formula, minutes = spec.autoscale.formula, spec.autoscale.interval_minutes
        else:
            formula, minutes = spec.autoscale, MIN_EVALUATION_MINUTES
        body["enableAutoScale"] = True
        body["autoScaleFormula"] = formula
        body["autoScaleEvaluationInterval"] = _iso_minutes(minutes)
    if spec.mpi:
        # Multi-instance tasks need a node each: never pack them (Batch's default is spread).
        body["taskSchedulingPolicy"] = {"nodeFillType": "spread"}
    if spec.inter_node_communication:
        # MPI ranks run as this account: the one Batch sets up SSH between nodes for.
        body["userAccounts"] = [mpi_user_account()]
    script = start_task_script(
        spec,
        azhpc_requirement=azhpc_requirement,
        wheel_file=wheel["filePath"] if wheel is not None else None,
        wheel_sha256=wheel_sha256,
    )
    body["startTask"] = {
        "commandLine": start_task_command_line(script),
        **({"resourceFiles": [dict(wheel)]} if wheel is not None else {}),
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
        "maxTaskRetryCount": 2,
        "waitForSuccess": True,
    }
    body["metadata"] = [
        {"name": "azhpc-version", "value": __version__},
        {"name": "azhpc-python", "value": spec.python},
        {"name": "azhpc-mpi", "value": str(spec.mpi).lower()},
        *({"name": name, "value": value} for name, value in (metadata or {}).items()),
    ]
    return body
