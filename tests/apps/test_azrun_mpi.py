"""``%%azrun --mpi N`` in a real IPython shell: the cell runs as an mpi4py program across N
emulated nodes; rank 0's values come back into the notebook."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import azhpc
from tests.conftest import batch_available

pytestmark = [
    pytest.mark.skipif(
        not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
    ),
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs Open MPI's mpirun"),
]


@pytest.fixture
def shell(batch_session) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "azhpc")
    ip.reset(new_session=False)
    spec = azhpc.PoolSpec("cellmpi", "Standard_HB120rs_v3", nodes=4, mpi=True,
                          inter_node_communication=True)  # fmt: skip
    with azhpc.Pool(spec, session=batch_session) as pool:
        ip.push({"mpi_pool": pool})
        yield ip
    ip.reset(new_session=False)


def run(shell: InteractiveShell, source: str):
    result = shell.run_cell(source)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def test_the_cell_runs_on_4_ranks_and_rank_0s_values_come_back(shell, capsys) -> None:
    run(shell, "scale = 10")
    value = run(
        shell,
        "%%azrun --mpi 4 --pool mpi_pool --out total,ranks\n"
        "import numpy as np\n"
        "from mpi4py import MPI\n"
        "comm = MPI.COMM_WORLD\n"
        "local = np.arange(comm.rank * 100, (comm.rank + 1) * 100) * scale\n"
        "total = int(comm.allreduce(local.sum()))\n"
        "ranks = comm.gather(comm.rank)\n"
        "print(f'rank {comm.rank} of {comm.size}', flush=True)\n"
        "total + 1",
    )
    expected = int(np.arange(400).sum() * 10)
    assert shell.user_ns["total"] == expected and value == expected + 1
    assert shell.user_ns["ranks"] == [0, 1, 2, 3]
    printed = capsys.readouterr().out
    assert all(f"rank {r} of 4" in printed for r in range(4))


def test_a_failing_rank_raises_with_its_traceback(shell) -> None:
    with pytest.raises(azhpc.TaskError) as caught:
        run(
            shell,
            "%%azrun --mpi 2 --pool mpi_pool\n"
            "from mpi4py import MPI\n"
            "if MPI.COMM_WORLD.rank == 1:\n"
            "    raise ValueError('rank one disagrees')\n",
        )
    assert "ValueError: rank one disagrees" in str(caught.value)


def test_mpi_needs_an_mpi_pool_and_a_plain_cell(shell) -> None:
    with pytest.raises(UsageError, match="MPI pool"):
        run(shell, "%%azrun --mpi 2\nx = 1")
    with pytest.raises(UsageError, match="does not combine"):
        run(shell, "%%azrun --mpi 2 --pool mpi_pool --map i in range(3)\ni")
