"""The Batch pools workshop notebook runs top to bottom in a real Jupyter kernel on the
``emulated`` profile (the Batch emulator and Azurite), unchanged from what runs on ``azure``."""

from __future__ import annotations

import nbformat
import pytest

from tests.conftest import batch_available
from tests.notebook_run import cell, errors, execute, profile_env, shown

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    home = tmp_path_factory.mktemp("notebook-03")
    env = profile_env("emulated", home)
    return execute("03-batch-pools.ipynb", timeout=180, env=env)


def test_runs_without_errors(notebook):
    assert errors(notebook) == []


def test_shows_the_estimates_before_creating_anything(notebook):
    assert "about 18.00 EUR/hour" in shown(cell(notebook, '"Standard_H16r", nodes=10'))
    workshop = shown(cell(notebook, "spot_nodes=2)\nprint(spec.estimate())"))
    assert (
        "1 x Standard_D2s_v5 (dedicated)" in workshop and "2 x Standard_D2s_v5 (spot)" in workshop
    )
    assert "cannot run on spot nodes" in shown(cell(notebook, "mpi=True"))


def test_watches_nodes_start_then_runs_and_survives_a_preemption(notebook):
    started = shown(cell(notebook, "azhpc.Pool(spec, progress=True)"))
    assert "creating pool 'workshop-pool'" in started
    assert "idle" in started
    estimate = shown(cell(notebook, "pi is about"))
    assert abs(float(estimate.split("pi is about ")[1].split()[0]) - 3.1416) < 0.01
    preempted = shown(cell(notebook, "emulator.preempt"))
    assert "preempted tvmps_" in preempted
    assert str([x * x for x in range(8)]) in preempted
    requeued = int(preempted.split("requeued tasks: ")[1].split()[0])
    assert requeued >= 1
    cost = float(preempted.split("compute cost on Azure: about ")[1].split()[0])
    assert 0 < cost < 0.01  # seconds of three Standard_D2s_v5 nodes


def test_deletes_the_pool_at_the_end(notebook):
    assert shown(cell(notebook, "pool.close()")).strip().endswith("[]")
