"""to_batch_pool(PoolSpec): the REST body, checked against the installed azure-batch models."""

from __future__ import annotations

import base64
import datetime
import shutil
import subprocess

import pytest

from azhpc.backends.batch.pool_body import start_task_script, to_batch_pool
from azhpc.pools import Autoscale, PoolSpec, PoolSpecError

models = pytest.importorskip("azure.batch.models")


def decoded_script(body: dict) -> str:
    command = body["startTask"]["commandLine"]
    encoded = command.split("echo ", 1)[1].split(" ", 1)[0]
    return base64.b64decode(encoded).decode()


def test_to_batch_pool_fixed_size_builds_sdk_model() -> None:
    body = to_batch_pool(
        PoolSpec("azhpc-p1", "Standard_D4s_v5", nodes=2, spot_nodes=3, task_slots_per_node=4)
    )
    pool = models.BatchPoolCreateOptions(body)
    assert pool.id == "azhpc-p1" and pool.vm_size == "Standard_D4s_v5"
    assert (pool.target_dedicated_nodes, pool.target_low_priority_nodes) == (2, 3)
    assert pool.task_slots_per_node == 4 and pool.enable_inter_node_communication is False
    image = pool.virtual_machine_configuration.image_reference
    assert (image.publisher, image.offer, image.sku, image.version) == (
        "canonical",
        "0001-com-ubuntu-server-jammy",
        "22_04-lts",
        "latest",
    )
    assert pool.virtual_machine_configuration.node_agent_sku_id == "batch.node.ubuntu 22.04"
    start = pool.start_task
    assert start.wait_for_success is True
    assert start.user_identity.auto_user.scope == "pool"
    assert start.user_identity.auto_user.elevation_level == "admin"
    assert pool.enable_auto_scale is None


def test_to_batch_pool_autoscale_builds_sdk_model() -> None:
    policy = Autoscale.follow_pending_tasks(max_nodes=10, slots_per_node=16, interval_minutes=10)
    spec = PoolSpec("p", "Standard_HB120rs_v3", autoscale=policy, task_slots_per_node=16)
    body = to_batch_pool(spec)
    assert "targetDedicatedNodes" not in body and "targetLowPriorityNodes" not in body
    pool = models.BatchPoolCreateOptions(body)
    assert pool.enable_auto_scale is True and pool.auto_scale_formula == policy.formula
    assert pool.auto_scale_evaluation_interval == datetime.timedelta(minutes=10)
    raw = to_batch_pool(PoolSpec("p", "Standard_D2s_v5", autoscale="$TargetDedicatedNodes = 1;"))
    assert raw["autoScaleEvaluationInterval"] == "PT5M"


def test_to_batch_pool_mpi_rdma_pool() -> None:
    body = to_batch_pool(
        PoolSpec("mpi", "Standard_HB120rs_v3", nodes=4, mpi=True, inter_node_communication=True)
    )
    pool = models.BatchPoolCreateOptions(body)
    assert pool.enable_inter_node_communication is True
    image = pool.virtual_machine_configuration.image_reference
    assert (image.publisher, image.offer, image.sku) == ("microsoft-dsvm", "ubuntu-hpc", "2204")
    assert pool.task_slots_per_node == 1
    assert pool.task_scheduling_policy.node_fill_type == "spread"


def test_to_batch_pool_container_image() -> None:
    body = to_batch_pool(
        PoolSpec("c", "Standard_D4s_v5", nodes=1, container_image="myacr.azurecr.io/app:1")
    )
    pool = models.BatchPoolCreateOptions(body)
    container = pool.virtual_machine_configuration.container_configuration
    assert container.type == "dockerCompatible"
    assert container.container_image_names == ["myacr.azurecr.io/app:1"]


def test_start_task_installs_python_azhpc_and_requirements(tmp_path) -> None:
    spec = PoolSpec(
        "p", "Standard_D4s_v5", nodes=1, python="3.12", requirements=["numpy>=1.26", "scikit-learn"]
    )
    body = to_batch_pool(spec, azhpc_requirement="azhpc==9.9")
    script = decoded_script(body)
    assert script == start_task_script(spec, azhpc_requirement="azhpc==9.9")
    assert 'uv" venv --clear --python 3.12' in script  # afresh when the start task reruns
    assert "azhpc==9.9" in script and "'numpy>=1.26'" in script and "scikit-learn" in script
    assert "cloudpickle" in script and "environment.json" in script
    assert body["startTask"]["commandLine"].startswith("/bin/bash -c '")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("kind", ["list", "requirements.txt", "environment.yml"])
def test_start_task_script_is_valid_bash(tmp_path, kind: str) -> None:
    requirements: object = ["numpy"]
    if kind == "requirements.txt":
        requirements = tmp_path / kind
        requirements.write_text("numpy\npandas>=2  # comment\n")
    elif kind == "environment.yml":
        requirements = tmp_path / kind
        requirements.write_text("name: x\ndependencies:\n  - numpy\n")
    spec = PoolSpec("p", "Standard_D4s_v5", nodes=1, requirements=requirements)
    script = start_task_script(spec)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    if kind != "list":
        assert requirements.read_text().rstrip() in script
    if kind == "environment.yml":
        assert "micromamba" in script


def test_start_task_installs_apt_packages_first_and_mpi_where_the_image_lacks_it() -> None:
    from azhpc.pools import ImageReference

    plain = PoolSpec("p", "Standard_D4s_v5", nodes=2, apt_packages=["build-essential"])
    script = start_task_script(plain)
    assert script.index("install -y -qq --no-install-recommends") < script.index('uv" venv')
    assert "build-essential" in script and "openmpi" not in script and "mpi4py" not in script
    mpi = PoolSpec("m", "Standard_D4s_v5", nodes=2, mpi=True, inter_node_communication=True)
    script = start_task_script(mpi)
    assert "openmpi-bin libopenmpi-dev" in script and "'mpi4py>=4'" in script
    hpc = PoolSpec("h", "Standard_HB120rs_v3", nodes=2, mpi=True, inter_node_communication=True)
    assert hpc.image == ImageReference.ubuntu_hpc_2204()
    script = start_task_script(hpc)
    assert "apt-get" not in script and "'mpi4py>=4'" in script  # the HPC image has its MPI
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    with pytest.raises(PoolSpecError, match="apt_packages"):
        PoolSpec("p", "Standard_D4s_v5", nodes=1, apt_packages=["rm -rf /"])


def test_start_task_apt_get_waits_for_the_dpkg_lock() -> None:
    """At first boot unattended-upgrades holds the dpkg lock: every apt-get waits for it."""
    spec = PoolSpec("p", "Standard_D4s_v5", nodes=2, mpi=True, inter_node_communication=True,
                    apt_packages=["build-essential"])  # fmt: skip
    calls = [line for line in start_task_script(spec).splitlines() if "apt-get " in line]
    assert len(calls) == 2  # update, install
    for line in calls:
        assert line.startswith("apt-get -o DPkg::Lock::Timeout="), line
        assert int(line.split("=", 1)[1].split()[0]) >= 300, line


@pytest.mark.parametrize("kind", ["list", "environment.yml"])
def test_node_environment_has_pip_for_run_on_pool_requirements(tmp_path, kind: str) -> None:
    """run_on_pool(requirements=...) runs `python -m pip` with the node's interpreter, so the
    environment the start task makes must contain pip (`uv venv` alone does not install it).
    tests/apps/test_run_on_pool.py runs it on the emulator's clean nodes."""
    import inspect

    from azhpc.backends.batch import node_command

    assert '"-m", "pip", "install"' in inspect.getsource(node_command.NodeCommand.__call__)
    requirements: object = ["numpy"]
    if kind == "environment.yml":
        requirements = tmp_path / kind
        requirements.write_text("name: x\ndependencies:\n  - numpy\n")
    script = start_task_script(PoolSpec("p", "Standard_D4s_v5", nodes=1, requirements=requirements))
    commands = [line for line in script.splitlines() if not line.startswith("#")]
    creates = [line for line in commands if " venv " in line or " create " in line]
    assert len(creates) == 1, creates
    if kind == "list":
        (install,) = [line for line in commands if " pip install " in line]
        assert " pip " in install.split("--python", 1)[1]  # pip among the packages installed
    else:
        assert creates[0].split()[-1] == "pip"  # micromamba create ... pip


def test_to_batch_pool_adds_ownership_metadata() -> None:
    from azhpc.backends.batch.pool_body import (
        CREATED,
        CREATED_BY,
        OWNER,
        SESSION,
        ownership_metadata,
    )

    mine = ownership_metadata()
    assert mine[CREATED_BY] == "azhpc" and "@" in mine[OWNER] and mine[SESSION]
    assert datetime.datetime.fromisoformat(mine[CREATED].replace("Z", "+00:00"))
    assert ownership_metadata("job-7")[SESSION] == "job-7"
    body = to_batch_pool(PoolSpec("p", "Standard_D4s_v5", nodes=1), metadata=mine)
    pool = models.BatchPoolCreateOptions(body)
    items = {item.name: item.value for item in pool.metadata}
    assert items[CREATED_BY] == "azhpc" and items[OWNER] == mine[OWNER]
    assert items["azhpc-version"]  # the existing items stay


def test_mpi_pool_has_the_azhpc_account_with_its_own_ssh_key() -> None:
    spec = PoolSpec("mpi", "Standard_HB120rs_v3", nodes=2, mpi=True, inter_node_communication=True)
    first, second = to_batch_pool(spec), to_batch_pool(spec)
    pool = models.BatchPoolCreateOptions(first)
    (account,) = pool.user_accounts
    assert account.name == "azhpc" and account.elevation_level == "nonadmin"
    key = account.linux_user_configuration.ssh_private_key
    assert key.startswith("-----BEGIN RSA PRIVATE KEY-----") and "ENCRYPTED" not in key
    # One key pair (and password) per pool.
    other = second["userAccounts"][0]
    assert other["linuxUserConfiguration"]["sshPrivateKey"] != key
    assert other["password"] != account.password
    assert "userAccounts" not in to_batch_pool(PoolSpec("plain", "Standard_D2s_v5", nodes=1))


def _fake_hpc_node(tmp_path):
    """A node of an HPC image: HPC-X under opt/ (its init script defines hpcx_load) and an
    InfiniBand device; returns the lines' keyword arguments and the node's environment."""
    hpcx = tmp_path / "opt" / "hpcx-v2.18-gcc-ubuntu22.04"
    (hpcx / "ompi" / "bin").mkdir(parents=True)
    mpirun = hpcx / "ompi" / "bin" / "mpirun"
    mpirun.write_text("#!/bin/sh\n")
    mpirun.chmod(0o755)
    (hpcx / "hpcx-init.sh").write_text(
        f'hpcx_load() {{ export PATH="{hpcx}/ompi/bin:$PATH" '
        f'LD_LIBRARY_PATH="{hpcx}/ompi/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
        f'OPAL_PREFIX="{hpcx}/ompi"; }}\n'
    )
    (tmp_path / "ib" / "mlx5_ib0").mkdir(parents=True)
    where = {
        "hpcx_init_glob": str(tmp_path / "opt" / "hpcx-*" / "hpcx-init.sh"),
        "infiniband_sysfs": str(tmp_path / "ib"),
    }
    env = {"PATH": "/usr/bin:/bin", "AZ_BATCH_NODE_SHARED_DIR": str(tmp_path / "shared")}
    return where, env, hpcx


@pytest.mark.parametrize("infiniband", [True, False])
def test_mpi_start_task_records_hpcx_mpirun_and_ucx_on_infiniband(tmp_path, infiniband) -> None:
    from azhpc.backends.batch.node_command import NodeCommand, read_mpi_record
    from azhpc.backends.batch.pool_body import mpi_setup_lines

    where, env, hpcx = _fake_hpc_node(tmp_path)
    if not infiniband:  # an HB node whose InfiniBand did not come up: TCP, said on stderr
        (tmp_path / "ib" / "mlx5_ib0").rmdir()
    spec = PoolSpec("mpi", "Standard_HB120rs_v3", nodes=2, mpi=True, inter_node_communication=True)
    script = "\n".join(["set -euo pipefail", *mpi_setup_lines(spec, **where)])
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = read_mpi_record(env)
    assert record["AZHPC_MPIRUN"] == str(hpcx / "ompi" / "bin" / "mpirun")
    assert record["OPAL_PREFIX"] == str(hpcx / "ompi")
    assert record["AZHPC_MPI_LIBRARY_PATH"] == str(hpcx / "ompi" / "lib")
    # The node command runs that mpirun, with HPC-X's libraries, and UCX on InfiniBand.
    env = {**env, "AZ_BATCH_HOST_LIST": "10.0.0.4,10.0.0.5"}
    argv = NodeCommand("python app.py", ranks=2)._mpirun(tmp_path, env, "node")
    assert argv[0] == record["AZHPC_MPIRUN"] and str(hpcx / "ompi" / "bin") in env["PATH"]
    assert env["LD_LIBRARY_PATH"].startswith(str(hpcx / "ompi" / "lib"))
    if infiniband:
        assert record["AZHPC_MPI_FABRIC"] == "infiniband"
        assert " ".join(argv).count("--mca pml ucx") == 1
        assert env["UCX_NET_DEVICES"] == "mlx5_ib0:1" and env["UCX_TLS"] == "rc,sm,self"
        assert "UCX_TLS" in argv and "UCX_NET_DEVICES" in argv  # passed on with -x
    else:
        assert record["AZHPC_MPI_FABRIC"] == "tcp" and "ucx" not in argv
        assert "no device in" in done.stderr


def test_mpi_start_task_fails_without_any_mpirun(tmp_path) -> None:
    from azhpc.backends.batch.pool_body import mpi_setup_lines

    where, env, _ = _fake_hpc_node(tmp_path)
    where["hpcx_init_glob"] = str(tmp_path / "nowhere" / "hpcx-*" / "hpcx-init.sh")
    spec = PoolSpec("mpi", "Standard_D2s_v5", nodes=2, mpi=True, inter_node_communication=True)
    script = "\n".join(["set -euo pipefail", *mpi_setup_lines(spec, **where)])
    tools = tmp_path / "tools"  # coreutils, and no mpirun
    tools.mkdir()
    for tool in ("dirname", "mkdir", "ls", "sort", "tail", "head", "mv"):
        (tools / tool).symlink_to(shutil.which(tool))
    env["PATH"] = str(tools)
    done = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "azhpc: no mpirun on this node" in done.stderr
