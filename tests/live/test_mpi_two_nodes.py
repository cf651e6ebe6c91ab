"""The 2-node MPI sample on a real Batch account: ``run_on_pool(..., mpi=True)`` runs an mpi4py
program as one multi-instance task across 2 nodes of an HPC size (InfiniBand, Ubuntu-HPC).

The size is ``AZHPC_LIVE_MPI_VM_SIZE``, else the smallest current HB size with a price on
record (the cost cap needs a price; retired sizes are refused by PoolSpec). The account needs
core quota for it (Batch accounts often have none for HB sizes until asked for).
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest

import azhpc

from .budget import smallest_priced_hb_size
from .conftest import LiveRun
from .harness import live_pools

VM_SIZE = os.environ.get("AZHPC_LIVE_MPI_VM_SIZE") or smallest_priced_hb_size()
NODES = 2

PROGRAM = textwrap.dedent(
    """
    import json, os
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    total = comm.reduce(comm.rank + 1, op=MPI.SUM, root=0)
    hosts = comm.gather(MPI.Get_processor_name(), root=0)
    if comm.rank == 0:
        print(json.dumps({"size": comm.size, "sum": total, "hosts": hosts}))
    """
)


@pytest.mark.live(vm_size=VM_SIZE, nodes=NODES)
@pytest.mark.timeout(1800, method="signal")
def test_mpi_program_on_two_hpc_nodes(live: LiveRun, tmp_path: Path) -> None:
    account = live.session.backend.account
    if account.emulated and (shutil.which("mpirun") is None or find_spec("mpi4py") is None):
        pytest.skip("MPI on the Batch emulator needs Open MPI's mpirun and mpi4py on this machine")
    script = tmp_path / "allreduce.py"
    script.write_text(PROGRAM)
    spec = azhpc.PoolSpec(
        live.pool_id("mpi"), VM_SIZE, nodes=NODES, mpi=True, inter_node_communication=True,
        max_cost_per_hour=live.max_cost_per_hour,
    )  # fmt: skip
    with azhpc.Pool(spec, session=live.session, timeout=live.node_timeout) as pool:
        run = azhpc.run_on_pool(script, pool=pool, mpi=True).result(timeout=600)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["size"], result["sum"]) == (NODES, sum(range(1, NODES + 1)))
    if not account.emulated:  # the emulator's nodes are all this machine
        assert len(set(result["hosts"])) == NODES
    assert live_pools(account, spec.pool_id) == []  # deleted (or deleting)
