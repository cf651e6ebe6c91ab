"""The worker side: run_task as an ordinary function, a Batch task from its files, payload files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from azhpc.core.calls import ApplyEach
from azhpc.core.node_signing import open_outcome, outcome_node
from azhpc.core.payload import (
    decode,
    encode,
    payload_from_bytes,
    payload_to_bytes,
    read_payload_file,
    write_payload_file,
)
from azhpc.core.states import TaskResult
from azhpc.core.worker import (
    BATCH_FILES,
    JOB_ID_VARIABLE,
    PAYLOADS_VARIABLE,
    encode_outcome,
    payload_digests,
    run_task,
)
from azhpc.errors import IntegrityError


def test_run_task_success_returns_value_and_output():
    def shout(items):
        print("hello from", len(items))
        return [i * 2 for i in items]

    outcome = run_task(shout, [1, 2])
    assert outcome.result is TaskResult.SUCCESS
    assert outcome.value == [2, 4]
    assert outcome.output == "hello from 2\n"


def test_run_task_failure_keeps_type_message_and_user_frames_only():
    def broken(x):
        return {}["missing"]

    outcome = run_task(ApplyEach(broken), [1])
    assert outcome.result is TaskResult.FAILURE
    assert outcome.error.type_name == "KeyError"
    assert outcome.error.message == "'missing'"
    assert "broken" in outcome.error.traceback
    assert "calls.py" not in outcome.error.traceback  # azhpc's wrapper frames are left out
    assert isinstance(outcome.error.exception, KeyError)


def test_run_task_sys_exit_is_a_task_failure():
    outcome = run_task(lambda _: sys.exit(3), None)
    assert outcome.result is TaskResult.FAILURE
    assert outcome.error.type_name == "SystemExit"


def test_encode_outcome_unpicklable_value_becomes_failure():
    import threading

    outcome = run_task(lambda _: threading.Lock(), None)
    back = decode(encode_outcome(outcome))
    assert back.result is TaskResult.FAILURE
    assert "could not be sent back from the worker" in back.error.message
    assert "_thread.lock" in back.error.message


def test_payload_file_round_trip_maps_buffers_writable(tmp_path):
    df = pd.DataFrame({"a": np.arange(100_000), "b": np.random.default_rng(0).random(100_000)})
    payload = encode(df)
    assert payload.buffers, "frame columns should travel out of band"
    path = str(tmp_path / "p")
    write_payload_file(path, payload)
    back = decode(read_payload_file(path))
    pd.testing.assert_frame_equal(back, df)
    back.loc[0, "b"] = -1.0  # copy-on-write mapping: writable, file unchanged
    again = decode(read_payload_file(path))
    assert again.loc[0, "b"] == df.loc[0, "b"]


def _batch_task_folder(tmp_path, payloads):
    """A Batch task's working folder with ``payloads`` downloaded, on a node prepared as a
    start task prepares it (its signing key, its environment record)."""
    from azhpc.core.node_signing import node_key_path, prepare_node

    env = {
        **os.environ,
        "AZ_BATCH_NODE_ROOT_DIR": str(tmp_path / "node"),
        "AZ_BATCH_NODE_ID": "node-1",
        "AZ_BATCH_TASK_ID": "task-00000",
        JOB_ID_VARIABLE: "job-1",
    }
    public = prepare_node(tmp_path / "node" / "shared" / "environment.json", node_key_path(env))
    work = tmp_path / "node" / "wd"
    work.mkdir(parents=True)
    digests = {}
    for name, payload in payloads.items():
        (work / BATCH_FILES[name]).write_bytes(payload_to_bytes(payload))
        digests[name] = payload.digest()
    env[PAYLOADS_VARIABLE] = payload_digests(digests)
    return work, env, bytes.fromhex(public)


def _run_batch_task(work, env):
    return subprocess.run(
        [sys.executable, "-m", "azhpc.worker", "batch"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_module_runs_a_batch_task_in_its_working_folder(tmp_path):
    payloads = {"function": encode(ApplyEach(abs), out_of_band=False), "input": encode([-1, 3])}
    work, env, public = _batch_task_folder(tmp_path, payloads)
    done = _run_batch_task(work, env)
    assert done.returncode == 0, done.stderr
    signed = (work / BATCH_FILES["outcome"]).read_bytes()
    assert outcome_node(signed) == "node-1"

    def trusted(node, key):
        return node == "node-1" and key == public

    data = open_outcome(signed, "job-1", "task-00000", trusted, what="the outcome")
    assert decode(payload_from_bytes(data)).value == [1, 3]
    # the same file is not the outcome of another task or job, nor from an unknown key
    for job_id, task_id in (("job-1", "task-00001"), ("job-2", "task-00000")):
        with pytest.raises(IntegrityError, match="another task"):
            open_outcome(signed, job_id, task_id, trusted, what="the outcome")
    with pytest.raises(IntegrityError, match="no node of this client"):
        open_outcome(signed, "job-1", "task-00000", lambda n, k: False, what="the outcome")
    tampered = signed[:-1] + bytes([signed[-1] ^ 1])
    with pytest.raises(IntegrityError, match="changed after"):
        open_outcome(tampered, "job-1", "task-00000", trusted, what="the outcome")


def test_batch_task_refuses_an_input_changed_in_the_lake(tmp_path):
    """The lake file differs from the hash in the task's definition: the node does not
    unpickle it (a lake writer cannot make a node run their pickle)."""
    marker = tmp_path / "ran"
    payloads = {"function": encode(ApplyEach(abs), out_of_band=False), "input": encode([-1])}
    work, env, _ = _batch_task_folder(tmp_path, payloads)

    def evil(_):
        marker.write_text("ran")

    (work / BATCH_FILES["function"]).write_bytes(payload_to_bytes(encode(evil)))
    done = _run_batch_task(work, env)
    assert done.returncode == 0, done.stderr  # an outcome was written: the task's failure
    signed = (work / BATCH_FILES["outcome"]).read_bytes()
    data = open_outcome(signed, "job-1", "task-00000", lambda n, k: True, what="the outcome")
    outcome = decode(payload_from_bytes(data))
    assert outcome.result is TaskResult.FAILURE
    assert "does not match the hash in the task's definition" in outcome.error.message
    assert not marker.exists()


def test_batch_task_without_its_definition_refuses_to_run(tmp_path):
    payloads = {"function": encode(ApplyEach(abs), out_of_band=False), "input": encode([-1])}
    work, env, _ = _batch_task_folder(tmp_path, payloads)
    del env[PAYLOADS_VARIABLE]
    done = _run_batch_task(work, env)
    assert done.returncode == 2 and "not started by azhpc" in done.stderr
    assert not (work / BATCH_FILES["outcome"]).exists()


def test_worker_module_without_arguments_prints_usage():
    done = subprocess.run(
        [sys.executable, "-m", "azhpc.worker"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "usage" in done.stderr


def test_run_task_keyboard_interrupt_is_a_task_failure_off_the_caller():
    def interrupted(_):
        raise KeyboardInterrupt("from the task")

    outcome = run_task(interrupted, None)
    assert outcome.result is TaskResult.FAILURE
    assert outcome.error.type_name == "KeyboardInterrupt"
    with pytest.raises(KeyboardInterrupt):  # in the caller's thread, it is the user's Ctrl-C
        run_task(interrupted, None, in_caller=True)


def test_modules_the_user_pickles_by_value_stay_so_after_a_job(tmp_path, monkeypatch):
    """azhpc registers the user's local modules for pickling by value while it stages a job;
    afterwards it unregisters only those it registered (one the user registered stays)."""
    import importlib.util

    import cloudpickle

    from azhpc.core.payload import local_modules_by_value

    source = tmp_path / "users_own_module_xyz.py"
    source.write_text("def f():\n    return 1\n")
    spec = importlib.util.spec_from_file_location("users_own_module_xyz", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "users_own_module_xyz", module)
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    try:
        with local_modules_by_value():
            pass
        assert "users_own_module_xyz" in cloudpickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(module)
