"""Multi-instance (MPI) tasks on emulated nodes, as Batch runs them.

A task with ``multiInstanceSettings`` takes ``numberOfInstances`` idle nodes of a pool with
inter-node communication. On every node the task's folder is created, the
``commonResourceFiles`` are downloaded into it (``AZ_BATCH_TASK_SHARED_DIR``) and the
``coordinationCommandLine`` runs; once every coordination command has exited 0, the
application command (the task's ``commandLine``) runs on the primary node (the first), with
the task's ``resourceFiles`` in its working directory; its exit code is the task's. Each node
is a subtask (``Task_ListSubtasks``; id 0 is the primary).

Environment, on every node, as Batch sets it: ``AZ_BATCH_HOST_LIST`` (``ip,ip,...``),
``AZ_BATCH_NODE_LIST`` (``ip;ip;...``), ``AZ_BATCH_MASTER_NODE`` (``ip:port``),
``AZ_BATCH_IS_CURRENT_NODE_MASTER`` (``true``/``false``), ``AZ_BATCH_TASK_SHARED_DIR``. Each
emulated node has its own loopback address (``127.0.x.y``, its ``ipAddress``), so the host list
names as many hosts as nodes, as on Batch.

What Batch needs before it runs one (else the task waits, or fails, as there): a pool with
inter-node communication and one task slot per node (the scheduler, ``runner.py``), and a
``userIdentity`` that is an account of the pool (``identity.py``). The coordination and
application commands run as that identity on each node.

``mpirun --host $AZ_BATCH_HOST_LIST`` on the primary works here as on a pool: the nodes'
environment points Open MPI at the emulator's SSH stand-in (``OMPI_MCA_plm_rsh_agent``,
``identity.py``), which starts a rank's daemon "on" a node only for a user whose SSH key that
node holds (a pool account with ``sshPrivateKey``), as ssh would. Because all nodes share this
machine's cores, hwloc's shared topology and core binding are turned off
(``OMPI_MCA_rtc=^hwloc``, ``OMPI_MCA_hwloc_base_binding_policy=none``): several Open MPI
daemons on one machine otherwise crash in ``hwloc_shmem_topology_write`` or pin every rank to
core 0.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azhpc.emulator.batch.identity import (
    identity_failure,
    write_host_map,
    write_ssh_stand_in,
)
from azhpc.emulator.batch.model import NodeState, TaskAttempt, TaskState, rfc3339, utcnow
from azhpc.emulator.batch.processes import node_info, run_process, task_environment
from azhpc.emulator.batch.transfer import (
    TransferError,
    download_resource_files,
    upload_output_files,
)

if TYPE_CHECKING:
    from azhpc.emulator.batch.model import Job, Node, Pool, Task, TaskAttempt
    from azhpc.emulator.batch.runner import Engine

__all__ = ["start_multi_instance"]

#: The port Batch reserves on the master node (``AZ_BATCH_MASTER_NODE``); not for MPI.
MASTER_PORT = 6000


def start_multi_instance(
    engine: Engine, job: Job, task: Task, pool: Pool, nodes: list[Node]
) -> None:
    """Hold ``nodes`` for ``task`` and start it in the background. Caller holds the lock."""

    primary = nodes[0]
    attempt = TaskAttempt(
        job_id=job.id, task_id=task.id, node_id=primary.id, pool_id=pool.id, slots=1,
        node_ids=tuple(n.id for n in nodes),
    )  # fmt: skip
    task.attempt = attempt
    for node in nodes:
        node.running[(job.id, task.id)] = attempt
        node.set_state(NodeState.RUNNING)
    info = task.execution_info
    for key in ("endTime", "exitCode", "result", "failureInfo"):
        info.pop(key, None)
    now = rfc3339(utcnow())
    info["startTime"] = now
    folders = [n.root / "workitems" / job.id / "job-1" / task.id for n in nodes]
    task.node_info = node_info(engine.base_url, pool, primary, job, task)
    task.task_dir = folders[0]
    task.subtasks = [
        {
            "id": index,
            "nodeInfo": node_info(engine.base_url, pool, node, job, task),
            "startTime": now,
            "state": "running",
            "stateTransitionTime": now,
        }
        for index, node in enumerate(nodes)
    ]
    task.set_state(TaskState.RUNNING)
    hosts = [n.ip_address for n in nodes]
    machinery = engine.store.root / ".emulator"
    ssh = write_ssh_stand_in(machinery)
    host_map = write_host_map(machinery / f"hosts-{job.id}-{task.id}", nodes)
    envs = []
    for index, (node, folder) in enumerate(zip(nodes, folders, strict=True)):
        extra = {
            "AZ_BATCH_TASK_SHARED_DIR": str(folder),
            "AZ_BATCH_HOST_LIST": ",".join(hosts),
            "AZ_BATCH_NODE_LIST": ";".join(hosts),
            "AZ_BATCH_MASTER_NODE": f"{hosts[0]}:{MASTER_PORT}",
            "AZ_BATCH_IS_CURRENT_NODE_MASTER": "true" if index == 0 else "false",
            # The emulator's stand-in for ssh between nodes, and no hwloc sharing or binding
            # among the Open MPI daemons that share this machine (module docstring).
            "OMPI_MCA_plm_rsh_agent": str(ssh),
            "OMPI_MCA_rtc": "^hwloc",
            "OMPI_MCA_hwloc_base_binding_policy": "none",
            "AZHPC_EMULATED_HOSTS": str(host_map),
        }
        envs.append(
            task_environment(
                engine.account_name, engine.base_url, pool, node, job, task, folder, extra
            )
        )
    engine._spawn(
        _run, engine, attempt, task, dict(task.spec), nodes, folders, envs,
        identity_failure(pool, task.spec), name=f"task-{job.id}-{task.id}",
    )  # fmt: skip


class _Refused(Exception):
    """The task cannot start (its ``failureInfo`` is already known)."""


def _failed(code: int | None, message: str) -> dict[str, Any]:
    return {
        "category": "usererror",
        "code": "FailureExitCode",
        "message": message,
        "details": [{"name": "Message", "value": f"The task exited with code {code}"}],
    }


def _run(
    engine: Engine,
    attempt: TaskAttempt,
    task: Task,
    spec: dict[str, Any],
    nodes: list[Node],
    folders: list[Path],
    envs: list[dict[str, str]],
    refused: dict[str, Any] | None = None,
) -> None:
    settings = spec.get("multiInstanceSettings") or {}
    failure: dict[str, Any] | None = refused  # a user identity that is no account of the pool
    code: int | None = None
    codes: list[int | None] = [None] * len(nodes)
    try:
        if refused is not None:
            raise _Refused
        for folder in folders:
            (folder / "wd").mkdir(parents=True, exist_ok=True)
            download_resource_files(settings.get("commonResourceFiles") or [], folder)
        download_resource_files(spec.get("resourceFiles") or [], folders[0] / "wd")
        coordination = settings.get("coordinationCommandLine")
        if not coordination:
            codes = [0] * len(nodes)  # nothing to run on the subtasks' nodes
        else:
            with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
                codes = list(
                    pool.map(
                        lambda i: run_process(
                            engine.store,
                            coordination,
                            folders[i] / "wd",
                            folders[i],
                            envs[i],
                            attempt=attempt,
                        ),
                        range(len(nodes)),
                    )
                )
            if attempt.cancelled or any(c is None for c in codes):
                return
            bad = next((i for i, c in enumerate(codes) if c != 0), None)
            if bad is not None:
                code = codes[bad]
                failure = _failed(
                    code,
                    f"The coordination command exited with code {code} on node {nodes[bad].id}",
                )
        if failure is None:
            code = run_process(
                engine.store, spec["commandLine"], folders[0] / "wd", folders[0], envs[0],
                attempt=attempt, append=bool(coordination),
            )  # fmt: skip
            if code is None or attempt.cancelled:
                return
            codes[0] = code
            if code != 0:
                failure = _failed(code, "The task process exited with an unexpected exit code")
            upload_output_files(
                spec.get("outputFiles") or [], folders[0] / "wd", succeeded=code == 0
            )
    except _Refused:
        pass
    except TransferError as e:
        failure = {"category": "usererror", "code": e.code, "message": str(e)}
    except OSError as e:
        failure = {"category": "servererror", "code": "TaskStartFailed", "message": str(e)}
    with engine.store.lock:
        if not attempt.cancelled and task.attempt is attempt:
            now = rfc3339(utcnow())
            for subtask, sub_code in zip(task.subtasks, codes, strict=True):
                subtask.update(
                    {
                        "state": "completed",
                        "previousState": "running",
                        "previousStateTransitionTime": subtask["stateTransitionTime"],
                        "stateTransitionTime": now,
                        "endTime": now,
                        "exitCode": sub_code,
                        "result": "success" if sub_code == 0 else "failure",
                    }
                )
    engine._finish_attempt(attempt, code, failure)
