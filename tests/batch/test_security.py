"""The Batch path's threat model (docs/security.md), line by line, on the emulator: what a
lake writer and a reader of the job definitions can and cannot do (issue 13, defect 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import azhpc
from azhpc.core.payload import encode, payload_to_bytes
from azhpc.errors import IntegrityError
from tests.conftest import batch_available, wait_until


@pytest.fixture(scope="module")
def emulated() -> Iterator[azhpc.Session]:
    if not batch_available():
        pytest.skip("needs azure-batch and Azurite (./dev test installs both)")
    # one node, one slot: the second task of a job waits while the first runs
    with azhpc.connect("emulated", backend="batch", workers=1, slots=1, progress=False) as s:
        yield s


def _wait_for(gate: str, x: int) -> int:
    import time
    from pathlib import Path

    while not Path(gate).exists():
        time.sleep(0.05)
    return x


class _Evil:
    """Writes a file when unpickled: the proof that a node or the client unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled",))


def test_job_and_task_definitions_carry_no_secret_and_scoped_sas_only(emulated, tmp_path) -> None:
    gate = tmp_path / "gate"
    job = emulated.submit_map(lambda x: _wait_for(str(gate), x), [1], chunksize=1)
    client = emulated.backend.account.client()
    batch_job_id = emulated.backend.batch_job_id(job.job_id)
    wait_until(lambda: job.progress.running == 1, timeout=60, what="the task to run")
    key = emulated.store.keys.key(job.job_id).hex()
    definition = json.dumps(client.get_job(batch_job_id).as_dict())
    tasks = [json.dumps(t.as_dict()) for t in client.list_tasks(batch_job_id)]
    gate.write_text("go")
    assert job.result(timeout=60) == [1]
    for text in (definition, *tasks):
        assert key not in text  # the job's key never leaves this machine
        assert "AZHPC_JOB_KEY" not in text
    (task,) = [json.loads(t) for t in tasks]
    assert {s["name"] for s in task["environmentSettings"]} == {
        "AZHPC_PAYLOADS",
        "AZHPC_TASK_RETRIES",
    }
    # read SAS for the inputs (one blob each), a write-only container SAS for the outputs
    urls = [f["httpUrl"] for f in task["resourceFiles"]]
    assert urls and all("sp=r" in u.split("?", 1)[1].split("&") for u in urls)
    for output in task["outputFiles"]:
        query = output["destination"]["container"]["containerUrl"].split("?", 1)[1]
        permissions = dict(p.split("=", 1) for p in query.split("&"))["sp"]
        assert "r" not in permissions and "w" in permissions


def test_node_private_key_is_not_served_by_the_batch_file_api(emulated) -> None:
    client = emulated.backend.account.client()
    pool_id = emulated.backend.pool.pool_id
    (node,) = client.list_nodes(pool_id)
    names = [f.name for f in client.list_node_files(pool_id, node.id, recursive=True)]
    assert any(n.endswith("azhpc/environment.json") for n in names)
    assert not any("azhpc-private" in n or n.endswith("node.key") for n in names)
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError):
        b"".join(
            client.download_node_file(pool_id, node.id, f"../azhpc-private/{node.id}/node.key")
        )


def test_input_replaced_in_the_lake_is_refused_by_the_node_not_unpickled(emulated, tmp_path):
    gate, marker = tmp_path / "gate", tmp_path / "unpickled"
    job = emulated.submit_map(lambda x: _wait_for(str(gate), x), [1, 2], chunksize=1)
    wait_until(lambda: job.progress.running == 1, timeout=60, what="the first task to run")
    # the second task's input, replaced by a lake writer while the task waits for a slot
    from azhpc.core.states import TaskState

    (waiting,) = [t.task_id for t in job.tasks if t.state is TaskState.ACTIVE]
    manifest = emulated.store.manifest(job.job_id)
    (digest,) = [d for task_id, _, d in manifest.tasks if task_id == waiting]
    evil = payload_to_bytes(encode([_Evil(str(marker))]))
    emulated.store.fs.pipe_file(emulated.store._payload_path(digest), evil)
    gate.write_text("go")
    with pytest.raises(azhpc.TaskError) as caught:
        job.result(timeout=60)
    assert caught.value.remote_type == "azhpc.errors.IntegrityError"
    assert "does not match the hash in the task's definition" in str(caught.value)
    assert not marker.exists()  # the node never unpickled it


def test_outcome_forged_or_replayed_in_the_lake_is_refused_not_unpickled(emulated, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from azhpc.core.node_signing import sign_outcome
    from azhpc.core.outcome import TaskOutcome
    from azhpc.core.states import TaskResult
    from azhpc.core.worker import encode_outcome

    store = emulated.store
    job = emulated.submit_map(abs, [-1, -2], chunksize=1)
    assert job.result(timeout=60) == [1, 2]
    first, second = (t.task_id for t in job.tasks)
    node = job.tasks[0].node
    # a reader of the job definitions has the outputs' write SAS: with a key of their own,
    # for a real node's name, they write a well-formed signed outcome
    marker = tmp_path / "unpickled"
    own = tmp_path / "own.key"
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    own.write_text(raw.hex())
    data = payload_to_bytes(
        encode_outcome(TaskOutcome(TaskResult.SUCCESS, value=_Evil(str(marker))))
    )
    forged = sign_outcome(own, job.job_id, first, node, data)
    store.fs.pipe_file(store._outcome_path(job.job_id, first), forged)
    with pytest.raises(IntegrityError, match="no node of this client's pools holds"):
        store.read_outcome(job.job_id, first)
    # a genuine outcome of another task, copied over this one
    genuine = store.fs.cat_file(store._outcome_path(job.job_id, second))
    store.fs.pipe_file(store._outcome_path(job.job_id, first), genuine)
    with pytest.raises(IntegrityError, match="another task"):
        store.read_outcome(job.job_id, first)
    assert not marker.exists()


def test_wheel_replaced_in_the_lake_is_not_installed_on_the_nodes(emulated) -> None:
    """A lake writer replaces the azhpc wheel the start task downloads: the start task checks
    the SHA-256 the pool's definition names and fails, saying so; nothing is installed."""
    from azhpc.errors import PoolStartError

    fs = emulated.lake.filesystem()
    pool = azhpc.Pool("evil-wheel", "Standard_D2s_v5", nodes=1, session=emulated)
    path = pool.batch_pool.wheel_stager.stage()
    good = fs.cat_file(path)
    fs.pipe_file(path, good[:-1] + bytes([good[-1] ^ 1]))
    try:
        with pytest.raises(PoolStartError) as caught:
            pool.start()
    finally:
        fs.pipe_file(path, good)
        pool.delete()
    assert "is not the wheel the client staged" in str(caught.value)


def test_application_files_replaced_in_the_lake_are_not_unpacked(emulated, tmp_path) -> None:
    import tarfile

    app, gate = tmp_path / "app", tmp_path / "gate"
    app.mkdir()
    (app / "run.sh").write_text("echo genuine\n")
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "run.sh").write_text("echo evil\n")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "run.sh", arcname="run.sh")
    store = emulated.store
    with azhpc.Pool("apps", "Standard_D2s_v5", nodes=1, session=emulated) as pool:
        busy = azhpc.run_on_pool(f"while [ ! -e {gate} ]; do sleep 0.05; done", pool=pool)
        wait_until(lambda: busy.progress.running == 1, timeout=60, what="the node to be busy")
        job = azhpc.run_on_pool("bash run.sh", pool=pool, files=app)  # waits for the node
        (archive,) = store.fs.glob(f"{store.root}/apps/*.tar.gz")
        store.fs.pipe_file(archive, evil.read_bytes())  # a lake writer's archive
        gate.write_text("go")
        busy.result(timeout=60)
        with pytest.raises(azhpc.TaskError) as caught:
            job.result(timeout=120)
    assert "are not the ones the client shipped" in str(caught.value)
    assert "evil" not in str(caught.value)


def test_mpi_coordination_command_refuses_a_replaced_archive(tmp_path) -> None:
    """Multi-instance tasks unpack the shipped files in their coordination command, which
    checks the archive's SHA-256 from the task's definition first."""
    import hashlib
    import io
    import os
    import subprocess
    import tarfile

    from azhpc.backends.batch.apps import _coordination

    def archive(text: str) -> bytes:
        data = text.encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("run.sh")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    genuine, evil = archive("echo genuine\n"), archive("echo evil\n")
    command = _coordination(hashlib.sha256(genuine).hexdigest())
    env = {**os.environ, "AZ_BATCH_TASK_SHARED_DIR": str(tmp_path)}
    for data, ok in ((evil, False), (genuine, True)):
        (tmp_path / "azhpc-app.tar.gz").write_bytes(data)
        done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True)
        assert (done.returncode == 0) is ok, done.stderr
        assert (tmp_path / "app" / "run.sh").exists() is ok
