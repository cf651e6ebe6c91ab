"""Pools azhpc creates on Azure stop billing on their own: a fixed-size pool scales itself to
zero nodes after an hour without tasks (an autoscale formula Batch evaluates, so it works
when the client was killed and could not delete the pool), and back when tasks come
(issue 13, defect 13)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import azhpc
from azhpc.backends.batch.pool_body import resolve_idle_shutdown, to_batch_pool
from azhpc.errors import PoolSpecError
from azhpc.pools import PoolSpec
from azhpc.pools.autoscale import IDLE_SHUTDOWN_MINUTES, Autoscale
from tests.conftest import batch_available, communicate_or_kill, wait_until


def test_fixed_pools_on_azure_get_the_idle_guard_by_default() -> None:
    pytest.importorskip("jsonschema")
    from tests.contract.batch_rest import Contract

    spec = PoolSpec("p", "Standard_D2s_v5", nodes=3, spot_nodes=1)
    assert resolve_idle_shutdown(spec, emulated=False) == IDLE_SHUTDOWN_MINUTES == 60
    assert resolve_idle_shutdown(spec, emulated=True) is None  # no money on the emulator
    body = to_batch_pool(spec, idle_shutdown_minutes=60)
    assert body["enableAutoScale"] is True and "targetDedicatedNodes" not in body
    formula = body["autoScaleFormula"]
    assert "$TargetDedicatedNodes = $busy > 0 ? 3 : 0;" in formula
    assert "$TargetLowPriorityNodes = $busy > 0 ? 1 : 0;" in formula
    assert "TimeInterval_Minute * 60" in formula
    assert Contract().validate("request", "BatchPoolCreateOptions", body) == []
    # opting out, and explicit minutes on an emulator
    kept = PoolSpec("p", "Standard_D2s_v5", nodes=3, idle_shutdown_minutes=None)
    assert resolve_idle_shutdown(kept, emulated=False) is None
    assert to_batch_pool(kept)["targetDedicatedNodes"] == 3
    short = PoolSpec("p", "Standard_D2s_v5", nodes=1, idle_shutdown_minutes=15)
    assert resolve_idle_shutdown(short, emulated=True) == 15
    # autoscaled pools say it in their policy
    auto = PoolSpec("p", "Standard_D2s_v5", autoscale=Autoscale.follow_pending_tasks(max_nodes=2))
    assert resolve_idle_shutdown(auto, emulated=False) is None
    with pytest.raises(PoolSpecError, match="scale_to_zero_when_idle"):
        PoolSpec(
            "p",
            "Standard_D2s_v5",
            autoscale=Autoscale.follow_pending_tasks(max_nodes=2),
            idle_shutdown_minutes=10,
        )
    for bad in (0, -5, 2.5, "soon", True):
        with pytest.raises(PoolSpecError, match="idle_shutdown_minutes"):
            PoolSpec("p", "Standard_D2s_v5", nodes=1, idle_shutdown_minutes=bad)


def test_guarded_pool_goes_to_zero_when_idle_and_comes_back_for_work(emulated) -> None:
    """On the emulator a minute of the service's clock is 0.04 s: 120 idle minutes are about
    5 s (the nodes take about 40 of its minutes to boot and run their start task)."""
    with azhpc.Pool(
        "guarded", "Standard_D2s_v5", nodes=2, idle_shutdown_minutes=120, session=emulated
    ) as pool:
        assert len(pool.nodes()) == 2  # the formula holds the size from the start
        assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
        wait_until(lambda: pool.nodes() == {}, timeout=60, what="the idle pool to shrink to 0")
        assert pool.map(abs, [-4, -5]) == [4, 5]  # tasks pending: back to its size
        assert 1 <= len(pool.nodes()) <= 2


CLIENT = """
import os, signal, sys
import azhpc

session = azhpc.connect("emulated", backend="batch", workers=1, progress=False)
pool = azhpc.Pool(
    "left-behind", "Standard_D2s_v5", nodes=2, idle_shutdown_minutes=120, session=session
)
pool.start()
assert pool.map(abs, [-1, -2]) == [1, 2]
print("ran", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # killed outright: no exit handler deletes the pool
"""


def test_pool_of_a_sigkilled_client_stops_billing_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workshop emulator runs in a process of its own, like Azure: a client killed with
    SIGKILL leaves its pool there; the idle guard takes it to zero nodes (120 minutes of the
    emulator's clock), and `azhpc pools delete --all-azhpc` removes it."""
    if not batch_available():
        pytest.skip("needs azure-batch and Azurite (./dev test installs both)")
    monkeypatch.setenv("AZHPC_EMULATOR_STATE", str(tmp_path / "emulator.json"))
    env = dict(os.environ)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "azhpc.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = cli("emulator", "start")
    assert started.returncode == 0, started.stderr
    try:
        script = tmp_path / "client.py"
        script.write_text(textwrap.dedent(CLIENT))
        client = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = communicate_or_kill(client, 180)
        assert "ran" in out and client.returncode == -9, err

        from azhpc.emulator.state import discover

        running = discover()
        assert running is not None
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        batch = BatchClient(
            endpoint=running.batch_url,
            credential=AzureNamedKeyCredential(
                running.batch_account_name, running.batch_account_key
            ),
        )
        assert batch.get_pool("left-behind").enable_auto_scale  # the guard went with it
        wait_until(
            lambda: list(batch.list_nodes("left-behind")) == [],
            timeout=60,
            what="the left-behind pool to shrink to zero nodes on its own",
        )
        deleted = cli("pools", "delete", "--all-azhpc", "--profile", "emulated")
        assert deleted.returncode == 0, deleted.stderr
        assert "left-behind" in deleted.stdout
    finally:
        cli("emulator", "stop")
