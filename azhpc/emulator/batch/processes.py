"""Processes on emulated nodes: the environment Batch gives them, starting and killing them.

Start tasks and tasks run as ``bash -c commandLine`` in their folder of the node, each in its
own process group so that preemption, removal and ``stop()`` can kill them with everything
they started. Their output goes to ``stdout.txt`` and ``stderr.txt`` in the task folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from azhpc.emulator.batch.identity import AUTO_USER, identity_environment
from azhpc.emulator.batch.model import Job, Node, Pool, Store, Task, TaskAttempt
from azhpc.emulator.batch.node_image import node_image

__all__ = [
    "environment_settings",
    "kill",
    "node_environment",
    "node_info",
    "node_tmp",
    "run_process",
    "task_environment",
]


def node_environment(account_name: str, base_url: str, pool: Pool, node: Node) -> dict[str, str]:
    """The node's image environment (:mod:`~azhpc.emulator.batch.node_image`: nothing of this
    process's), its own temporary folder (``TMPDIR``: ``<node root>/tmp``, as a real node has
    its own ``/tmp``; removed with the node) and the node-wide ``AZ_BATCH_*`` variables."""
    home = node.root / "home" / AUTO_USER
    home.mkdir(parents=True, exist_ok=True)
    env = node_image(node.root.parents[1]).environment(home)
    env.update(
        {
            "TMPDIR": str(node_tmp(node)),
            "AZ_BATCH_ACCOUNT_NAME": account_name,
            "AZ_BATCH_ACCOUNT_URL": base_url + "/",
            "AZ_BATCH_POOL_ID": pool.id,
            "AZ_BATCH_NODE_ID": node.id,
            "AZ_BATCH_NODE_IS_DEDICATED": "true" if node.is_dedicated else "false",
            "AZ_BATCH_NODE_ROOT_DIR": str(node.root),
            "AZ_BATCH_NODE_SHARED_DIR": str(node.root / "shared"),
            "AZ_BATCH_NODE_STARTUP_DIR": str(node.root / "startup"),
            "AZ_BATCH_NODE_STARTUP_WORKING_DIR": str(node.root / "startup" / "wd"),
            "AZ_BATCH_TASK_USER": AUTO_USER,
        }
    )
    return env


def node_tmp(node: Node) -> Path:
    """The node's own temporary folder (``<node root>/tmp``), created on first use."""
    folder = node.root / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def environment_settings(spec: Mapping[str, Any]) -> dict[str, str]:
    """A body's ``environmentSettings`` as a dict."""
    return {
        str(s["name"]): str(s.get("value") or "")
        for s in spec.get("environmentSettings") or []
        if s.get("name")
    }


def task_environment(
    account_name: str,
    base_url: str,
    pool: Pool,
    node: Node,
    job: Job,
    task: Task,
    folder: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A task's environment on ``node``: the node's, its identity's (``identity.py``), the
    task's own variables (and ``extra``, e.g. a multi-instance task's), the job's common
    settings, then the task's settings."""
    env = node_environment(account_name, base_url, pool, node)
    env.update(identity_environment(pool, node, task.spec))
    env.update(
        {
            "AZ_BATCH_JOB_ID": job.id,
            "AZ_BATCH_TASK_ID": task.id,
            "AZ_BATCH_TASK_DIR": str(folder),
            "AZ_BATCH_TASK_WORKING_DIR": str(folder / "wd"),
        }
    )
    env.update(extra or {})
    env.update(
        environment_settings({"environmentSettings": job.spec.get("commonEnvironmentSettings")})
    )
    env.update(environment_settings(task.spec))
    return env


def node_info(base_url: str, pool: Pool, node: Node, job: Job, task: Task) -> dict[str, Any]:
    """The ``nodeInfo`` of a task (or subtask) running on ``node``."""
    root = f"workitems/{job.id}/job-1/{task.id}"
    return {
        "affinityId": f"TVM:{node.id}",
        "nodeUrl": f"{base_url}/pools/{pool.id}/nodes/{node.id}",
        "poolId": pool.id,
        "nodeId": node.id,
        "taskRootDirectory": root,
        "taskRootDirectoryUrl": f"{base_url}/pools/{pool.id}/nodes/{node.id}/files/{root}",
    }


def run_process(
    store: Store,
    command_line: str,
    working_dir: Path,
    folder: Path,
    env: dict[str, str],
    *,
    attempt: TaskAttempt | None = None,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    append: bool = False,
) -> int | None:
    """Run ``bash -c command_line``; its exit code, or ``None`` when cancelled before start.

    Its output goes to ``stdout.txt``/``stderr.txt`` in ``folder`` (after what is there with
    ``append``). The process is recorded on ``attempt`` (and given to ``started``) under the
    store's lock, so that a cancellation either prevents or kills it.
    """
    mode = "ab" if append else "wb"
    with open(folder / "stdout.txt", mode) as out, open(folder / "stderr.txt", mode) as err:
        with store.lock:
            if store.stopping.is_set() or (attempt is not None and attempt.cancelled):
                return None
            process = subprocess.Popen(
                ["bash", "-c", command_line],
                cwd=working_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            if store.guard is not None:
                store.guard.started(process.pid)  # its group dies with this process
            if started is not None:
                started(process)
            if attempt is not None:
                attempt.process = process
                attempt.processes.append(process)
        code = process.wait()
        if store.guard is not None:
            store.guard.ended(process.pid)
        return code


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """Kill a process and its group, if it is still running."""
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
