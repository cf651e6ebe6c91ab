"""Emulated nodes are clean machines: they run the start task azhpc sends to Azure, and tasks
have only what it installed (issue 12: "Nodes have only what the start task installed").

Each emulated node's start task installs the client's azhpc wheel from the lake, its pinned
packages and the user's requirements from the emulator's offline package index, into the
node's own virtual environment; the client's site-packages are out of reach.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc.backends.batch.pool_body import to_batch_pool
from azhpc.errors import PoolStartError
from azhpc.pools import PoolSpec
from tests.conftest import wait_until


def _where_am_i(_: Any) -> dict[str, Any]:
    import importlib.util
    import os
    import sys

    import azhpc as node_azhpc

    return {
        "prefix": sys.prefix,
        "azhpc": node_azhpc.__file__,
        "pytest": importlib.util.find_spec("pytest") is not None,
        "duckdb": importlib.util.find_spec("duckdb") is not None,
        "pandas": importlib.util.find_spec("pandas") is not None,
        "env": {k: os.environ.get(k) for k in ("VIRTUAL_ENV", "PYTHONPATH", "PATH", "HOME")},
    }


def test_tasks_run_in_the_environment_the_start_task_installed(emulated) -> None:
    (seen,) = emulated.map(_where_am_i, [0])
    node_root = Path(emulated.backend.account.emulator.root)
    env_dir = Path(seen["prefix"])
    assert env_dir.name == "env" and node_root in env_dir.parents  # the node's own venv
    assert Path(seen["azhpc"]).is_relative_to(env_dir)  # azhpc from the staged wheel
    assert Path(seen["azhpc"]).parent != Path(azhpc.__file__).parent
    assert seen["pandas"]  # a pinned package, installed by the start task
    # installed here (the dev extra) but not on the node: nothing of the client leaks in
    assert not seen["pytest"] and not seen["duckdb"]
    assert seen["env"]["VIRTUAL_ENV"] is None and seen["env"]["PYTHONPATH"] is None
    assert sys.prefix not in seen["env"]["PATH"]
    record = json.loads((env_dir.parent / "environment.json").read_text())
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    assert record["azhpc"] == azhpc.__version__


def test_start_task_without_the_wheel_fails_with_the_install_error_not_a_hang(
    emulated,
) -> None:
    """Defect 1 as Azure shows it: a start task that installs ``azhpc==<version>`` from the
    package index (where azhpc is not published) fails on every node; the client says so with
    the installer's own error instead of waiting."""
    client = emulated.backend.account.client()
    from azure.batch import models

    spec = PoolSpec("no-wheel", "Standard_D2s_v5", nodes=1)
    body = to_batch_pool(spec)  # no wheel: azhpc==<version> from the index
    client.create_pool(models.BatchPoolCreateOptions(body))
    try:
        wait_until(
            lambda: [n.state for n in client.list_nodes("no-wheel")] == ["starttaskfailed"],
            timeout=120,
            what="the node's start task to fail",
        )
        (node,) = client.list_nodes("no-wheel")
        info = node.start_task_info
        assert info.result == "failure" and info.exit_code != 0
        with pytest.raises(PoolStartError) as caught:
            azhpc.Pool("no-wheel", session=emulated).start()  # adopts it, waits for nodes
        message = str(caught.value)
        assert "start task" in message
        assert "azhpc" in message and "not found" in message  # uv's own words, from stderr
    finally:
        client.begin_delete_pool("no-wheel")


def test_a_wheel_missing_from_the_lake_fails_the_start_task(emulated) -> None:
    """The wheel's resource file points at a blob that is gone: Batch cannot download it and
    the start task fails before it runs (``failureInfo``), reported by the client."""
    fs = emulated.lake.filesystem()
    pool = azhpc.Pool("gone-wheel", "Standard_D2s_v5", nodes=1, session=emulated)
    try:
        fs.rm(pool.batch_pool.wheel_stager.stage())  # staged, then gone (a later pool stages it)
        with pytest.raises(PoolStartError) as caught:
            pool.start()
    finally:
        pool.delete()
    message = str(caught.value)
    assert "start task" in message and "azhpc-" in message and ".whl" in message


def test_a_requirement_missing_from_the_index_fails_the_start_task(emulated) -> None:
    """A requirement the package index does not have (here: the emulator's offline index,
    which has what is installed with the client) fails the start task with uv's message."""
    pool = azhpc.Pool(
        "bad-req",
        "Standard_D2s_v5",
        nodes=1,
        requirements=["no-such-package-azhpc-test==1.0"],
        session=emulated,
    )
    try:
        with pytest.raises(PoolStartError) as caught:
            pool.start()
    finally:
        pool.delete()
    assert "no-such-package-azhpc-test" in str(caught.value)


def test_the_emulated_image_has_no_internet_but_its_package_index(emulated, tmp_path) -> None:
    from azhpc.emulator.batch.node_image import node_image

    image = node_image(tmp_path)
    env = {**image.environment(tmp_path), "UV_INSTALL_DIR": str(tmp_path / "bin")}
    import subprocess

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    fetched = run("curl -LsSf https://example.com/x.sh")
    assert fetched.returncode == 6 and "Could not resolve host: example.com" in fetched.stderr
    installed = run("curl -LsSf https://astral.sh/uv/install.sh | sh && bin/uv --version")
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip().splitlines()[-1].startswith("uv ")
    missing = run("apt-get -o DPkg::Lock::Timeout=1 install -y no-such-package-azhpc")
    assert missing.returncode == 100 and "Unable to locate package" in missing.stderr
    assert run("apt-get install -y bash").returncode == 0  # this machine has it
    assert os.environ.get("VIRTUAL_ENV") != env.get("VIRTUAL_ENV") or "VIRTUAL_ENV" not in env
