"""The worker side: run_task as an ordinary function, a Batch task from its files, payload files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from azhpc.core.calls import ApplyEach
from azhpc.core.payload import (
    decode,
    encode,
    payload_from_bytes,
    payload_to_bytes,
    read_payload_file,
    write_payload_file,
)
from azhpc.core.signing import unseal
from azhpc.core.states import TaskResult
from azhpc.core.worker import BATCH_FILES, JOB_KEY_VARIABLE, encode_outcome, run_task


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


def test_worker_module_runs_a_batch_task_in_its_working_folder(tmp_path):
    key = os.urandom(32)
    for name, payload in (
        ("function", encode(ApplyEach(abs), out_of_band=False)),
        ("input", encode([-1, -2, 3])),
    ):
        (tmp_path / BATCH_FILES[name]).write_bytes(payload_to_bytes(payload))
    done = subprocess.run(
        [sys.executable, "-m", "azhpc.worker", "batch"],
        cwd=tmp_path,
        env={**os.environ, JOB_KEY_VARIABLE: key.hex()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    sealed = (tmp_path / BATCH_FILES["outcome"]).read_bytes()
    outcome = decode(payload_from_bytes(unseal(key, sealed, what="the outcome")))
    assert outcome.value == [1, 2, 3]


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
