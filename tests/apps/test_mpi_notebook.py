"""The MPI workshop notebook runs top to bottom in a real Jupyter kernel on ``emulated``."""

from __future__ import annotations

import json
import shutil

import nbformat
import numpy as np
import pytest

from tests.conftest import batch_available
from tests.notebook_run import cell, errors, execute, profile_env, shown

pytestmark = [
    pytest.mark.skipif(
        not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
    ),
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs Open MPI's mpirun"),
]


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    home = tmp_path_factory.mktemp("notebook-05")
    env = profile_env("emulated", home)
    return execute("05-mpi-on-batch.ipynb", timeout=180, env=env)


def printed(code) -> str:
    """What a cell printed to stdout (not the widgets it displayed)."""
    return "".join(
        o.get("text", "")
        for o in code.outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


def test_runs_without_errors(notebook):
    assert errors(notebook) == []


def test_shows_the_cost_of_ten_h16r_nodes(notebook):
    assert "about 18.00 EUR/hour" in shown(cell(notebook, '"Standard_H16r", nodes=10'))


def test_runs_a_command_on_each_of_the_four_nodes(notebook):
    lines = printed(cell(notebook, "has $(nproc) cores")).strip().splitlines()
    nodes = [line.split(" -> ")[0] for line in lines]
    assert len(nodes) == 4 == len(set(nodes))
    assert all(line.split(" -> ")[1].startswith(line.split(" -> ")[0]) for line in lines)


def test_the_mpi_monte_carlo_is_right(notebook):
    text = printed(cell(notebook, "job.result()\nprint(run.stdout"))
    answer = json.loads(text.strip().splitlines()[-1])
    hits = 0
    for rank in range(4):
        xy = np.random.default_rng(seed=rank).random((500_000, 2))
        hits += int(((xy**2).sum(axis=1) <= 1.0).sum())
    assert answer["ranks"] == 4 and answer["pi"] == 4 * hits / (500_000 * 4)
    # Each rank on its own emulated node (a loopback address each), as the pool's azhpc account.
    seen = answer["host_user_and_host_list_of_each_rank"]
    hosts = seen[0][2].split(",")
    assert len(set(hosts)) == 4 and all(h.startswith("127.0.") for h in hosts)
    assert sorted(host for host, _, _ in seen) == sorted(hosts)
    assert all(user == "azhpc" and host_list == seen[0][2] for _, user, host_list in seen)


def test_the_mpi_cell_brings_back_the_distributed_sum(notebook):
    assert "total 499999500000, numpy here says 499999500000" in shown(
        cell(notebook, 'print(f"total {total:.0f}')
    )
    ranks = shown(cell(notebook, "%%azrun --mpi 4"))
    assert all(f"rank {r}: 250000 values" in ranks for r in range(4))


def test_a_failing_rank_is_reported_and_the_pool_deleted(notebook):
    assert "rank 3 ran out of input" in shown(cell(notebook, "ran out of input"))
    assert shown(cell(notebook, "pool.close()")).strip().endswith("[]")
