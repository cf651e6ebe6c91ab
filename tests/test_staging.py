"""Durable jobs: the job store on a lake folder, and attach() from another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import fsspec
import pytest

import azhpc
from azhpc.backends.local.backend import LocalBackend
from azhpc.core.payload import encode
from azhpc.core.signing import IntegrityError, KeyRing
from azhpc.session import Session
from azhpc.staging import JobNotFoundError, JobStore
from tests.conftest import communicate_or_kill, wait_until

ROOT = Path(__file__).resolve().parent.parent


def make_store(folder) -> JobStore:
    return JobStore(fsspec.filesystem("file"), str(folder))


def test_payloads_are_stored_once_by_content(tmp_path):
    store = make_store(tmp_path)
    first = store.put_payload(encode([1, 2, 3]))
    again = store.put_payload(encode([1, 2, 3]))
    assert first == again
    assert os.listdir(tmp_path / "payloads") == [first]
    assert store.load_payload(first).data == encode([1, 2, 3]).data


def test_damaged_payload_is_refused(tmp_path):
    store = make_store(tmp_path)
    digest = store.put_payload(encode("hello"))
    path = tmp_path / "payloads" / digest
    data = bytearray(path.read_bytes())
    data[30] ^= 0xFF  # inside the pickle stream (the end of the file is padding)
    path.write_bytes(bytes(data))
    with pytest.raises(azhpc.AzhpcError, match="does not match its content hash"):
        store.load_payload(digest)


def test_durable_session_keeps_manifest_and_every_outcome(tmp_path):
    store = make_store(tmp_path)
    with Session(LocalBackend(workers=2), progress=False, store=store) as session:
        job = session.submit_map(lambda x: x * 3, range(10), chunksize=3)
        assert job.result(timeout=60) == [x * 3 for x in range(10)]
    manifest = store.load_manifest(job.job_id)
    assert [t[0] for t in manifest.tasks] == [f"task-{i:05d}" for i in range(4)]
    outcomes = store.finished_outcomes(job.job_id)
    assert sorted(outcomes) == [t[0] for t in manifest.tasks]
    assert outcomes["task-00001"].value == [9, 12, 15]
    leftovers = [p for p in (tmp_path / "jobs").rglob("*") if ".partial" in p.name]
    assert leftovers == []


def test_unfinished_write_is_never_read_as_an_outcome(tmp_path):
    store = make_store(tmp_path)
    with Session(LocalBackend(workers=1), progress=False, store=store) as session:
        job = session.submit(abs, -4)
        job.result(timeout=60)
    folder = tmp_path / "jobs" / job.job_id / "outcomes"
    (folder / ".task-00000.partial-dead").write_bytes(b"half a resu")
    assert list(store.finished_outcomes(job.job_id)) == ["task-00000"]


def test_attach_needs_a_durable_session_and_a_known_job(tmp_path, local_session):
    with pytest.raises(azhpc.ConfigError, match="durable"):
        azhpc.attach("azhpc-19990101-000000-000000", pool=local_session)
    store = make_store(tmp_path)
    with (
        Session(LocalBackend(workers=1), progress=False, store=store) as session,
        pytest.raises(JobNotFoundError, match="no durable job"),
    ):
        azhpc.attach("azhpc-19990101-000000-000000", pool=session)


CLIENT = """
import os, sys, threading
from pathlib import Path
import fsspec, azhpc
from azhpc.backends.local.backend import LocalBackend
from azhpc.session import Session
from azhpc.staging import JobStore

lake, counts, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

def work(x):
    with open(counts / f"{{x}}", "a") as f:    # count every execution of every item
        f.write(".")
    release = Path(lake).parent / "release"     # the second half waits for this file
    while x >= 4 and mode == "stall" and not release.exists():
        threading.Event().wait(0.05)
    return x * x

store = JobStore(fsspec.filesystem("file"), lake)
with Session(LocalBackend(workers=2), progress=False, store=store) as session:
{body}
"""


def run_client(tmp_path, mode, body, wait=True):
    script = tmp_path / f"client_{mode}.py"
    script.write_text(textwrap.dedent(CLIENT).format(body=textwrap.indent(body, "    ")))
    args = [sys.executable, str(script), str(tmp_path / "lake"), str(tmp_path / "counts"), mode]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT)
    )
    if not wait:
        return proc
    out, err = communicate_or_kill(proc, 120)
    assert proc.returncode == 0, err
    return out.strip().splitlines()


def executions(tmp_path) -> dict[int, int]:
    folder = tmp_path / "counts"
    return {int(p.name): len(p.read_text()) for p in folder.iterdir()}


def test_attach_from_another_process_reruns_nothing(tmp_path):
    (tmp_path / "counts").mkdir()
    first = run_client(
        tmp_path,
        "ok",
        "job = session.submit_map(work, range(8), chunksize=1)\n"
        "print(job.job_id)\nprint(job.result())",
    )
    job_id, result = first[0], first[1]
    assert executions(tmp_path) == {x: 1 for x in range(8)}
    second = run_client(
        tmp_path,
        "ok",
        f"job = azhpc.attach({job_id!r}, pool=session)\n"
        "print(job.job_id)\nprint(job.result())\nprint(job.progress.succeeded)",
    )
    assert second == [job_id, result, "8"]
    assert executions(tmp_path) == {x: 1 for x in range(8)}  # nothing ran again


def test_attach_after_the_client_was_killed_runs_only_unfinished_tasks(tmp_path):
    (tmp_path / "counts").mkdir()
    proc = run_client(
        tmp_path,
        "stall",
        "job = session.submit_map(work, range(8), chunksize=1)\n"
        "print(job.job_id, flush=True)\njob.result()",
        wait=False,
    )
    job_id = proc.stdout.readline().strip()
    outcomes = tmp_path / "lake" / "jobs" / job_id / "outcomes"
    wait_until(
        lambda: outcomes.exists() and len([p for p in outcomes.iterdir()]) >= 4,
        timeout=60,
        what="the first half of the tasks to be stored",
    )
    proc.send_signal(signal.SIGKILL)
    communicate_or_kill(proc, 60)
    done_before = executions(tmp_path)
    assert all(done_before[x] == 1 for x in range(4))
    # The stored function is the original one (cloudpickle kept mode == "stall"): let it end.
    (tmp_path / "release").write_text("")

    second = run_client(
        tmp_path,
        "ok",
        f"job = azhpc.attach({job_id!r}, pool=session)\nprint(job.result())",
    )
    assert second == [str([x * x for x in range(8)])]
    after = executions(tmp_path)
    assert all(after[x] == 1 for x in range(4)), "finished tasks must not run again"
    assert all(after[x] == done_before.get(x, 0) + 1 for x in range(4, 8))


def _finished_job(tmp_path, store):
    with Session(LocalBackend(workers=1), progress=False, store=store) as session:
        job = session.submit_map(lambda x: -x, range(3), chunksize=1)
        job.result(timeout=60)
    return job.job_id


def test_tampered_outcome_is_never_unpickled(tmp_path):
    store = make_store(tmp_path / "lake")
    job_id = _finished_job(tmp_path, store)
    path = tmp_path / "lake" / "jobs" / job_id / "outcomes" / "task-00001"
    forged = make_store(tmp_path / "other")  # a well-formed outcome, sealed with another key
    other_id = _finished_job(tmp_path, forged)
    path.write_bytes(
        (tmp_path / "other" / "jobs" / other_id / "outcomes" / "task-00001").read_bytes()
    )
    with pytest.raises(IntegrityError, match="outcome of task-00001"):
        store.finished_outcomes(job_id)


def test_tampered_manifest_is_refused(tmp_path):
    store = make_store(tmp_path)
    job_id = _finished_job(tmp_path, store)
    path = tmp_path / "jobs" / job_id / "manifest.json"
    path.write_text(path.read_text().replace('"retries": 0', '"retries": 5'))
    with pytest.raises(IntegrityError, match="manifest"):
        store.load_manifest(job_id)


def test_attach_without_the_jobs_key_says_where_the_key_is(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    job_id = _finished_job(tmp_path, store)
    elsewhere = JobStore(store.fs, store.root, keys=KeyRing(tmp_path / "no-keys"))
    with pytest.raises(IntegrityError, match="copy .*" + job_id):
        elsewhere.load_manifest(job_id)


def test_job_keys_are_readable_by_their_owner_only(tmp_path):
    import stat

    store = make_store(tmp_path)
    job_id = _finished_job(tmp_path, store)
    key_file = store.keys.folder / job_id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32
    assert job_id in repr(store.keys) or str(store.keys.folder) in repr(store.keys)
