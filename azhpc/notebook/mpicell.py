"""``%%azrun --mpi N``: a notebook cell as an mpi4py program across N nodes of an MPI pool.

The cell (a :class:`~azhpc.notebook.cellrun.CellRunner`, its variables already pickled) is
shipped as a file with :func:`azhpc.run_on_pool`'s machinery; the multi-instance task's primary
runs ``mpirun`` with one rank per node, each rank runs ``python -m azhpc.notebook.mpicell``:
the cell in a fresh namespace (``mpi4py`` importable; ``MPI.COMM_WORLD`` is the run's
communicator), and rank 0 writes its :class:`~azhpc.notebook.cellrun.CellResult` (its last
expression's value and the variables to bring back) next to the cell. :class:`MpiCell`, the
task's function, returns that result, so the notebook gets rank 0's values like any
``%%azrun`` cell's, and prints what the ranks printed.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azhpc.core.pickling import dumps
from azhpc.errors import ConfigError
from azhpc.notebook.cellgather import GatherPlain

if TYPE_CHECKING:
    from azhpc.backends.batch.node_command import NodeCommand
    from azhpc.core.job import Job
    from azhpc.notebook.cellrun import CellResult, CellRunner
    from azhpc.session import Session

__all__ = ["CELL_FILE", "RESULT_FILE", "MpiCell", "submit_mpi_cell"]

#: The pickled cell, shipped with the application files.
CELL_FILE = "azhpc-cell.pkl"
#: Rank 0's result, written next to the cell.
RESULT_FILE = "azhpc-cell-result.pkl"


@dataclass(frozen=True)
class MpiCell:
    """The task's function: run the MPI command, then return rank 0's cell result."""

    command: NodeCommand

    def __call__(self, index: int) -> CellResult:
        run = self.command(index)
        if run.stdout:
            print(run.stdout, end="" if run.stdout.endswith("\n") else "\n")
        if run.stderr:
            print(run.stderr, end="", file=sys.stderr)
        shared = Path(os.environ.get("AZ_BATCH_TASK_SHARED_DIR", os.getcwd()))
        with open(shared / "app" / RESULT_FILE, "rb") as f:
            return pickle.load(f)


def submit_mpi_cell(runner: CellRunner, ranks: int, pool: Session) -> Job:
    """Start ``runner`` as an mpi4py program with ``ranks`` ranks, one per node of ``pool``."""
    # lazy: the client side only; every MPI rank imports this module on its node
    from azhpc.backends.batch.apps import launch
    from azhpc.backends.batch.pool import Pool

    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ConfigError(f"--mpi takes a number of ranks (nodes) >= 1, got {ranks!r}")
    if not isinstance(pool, Pool):
        raise ConfigError(
            "%%azrun --mpi runs on an MPI pool, one rank per node: create one, e.g. mpi_pool = "
            "azhpc.Pool(azhpc.PoolSpec('mpi', 'Standard_HB120rs_v3', nodes=4, mpi=True, "
            "inter_node_communication=True)).start(), then use --pool mpi_pool"
        )

    with tempfile.TemporaryDirectory(prefix="azhpc-mpi-cell-") as folder:
        cell = Path(folder) / CELL_FILE
        cell.write_bytes(dumps(runner))
        return launch(
            pool,
            f"python -m azhpc.notebook.mpicell {CELL_FILE} {RESULT_FILE}",
            [cell],
            mpi=True,
            nodes=ranks,
            wrap=MpiCell,
            gather=GatherPlain(),
            name=f"%%azrun --mpi {ranks}",
        )


def main(argv: list[str]) -> int:
    """One rank: run the cell; rank 0 writes the result file (``argv``: cell file, result)."""
    from mpi4py import MPI

    with open(argv[0], "rb") as f:
        runner: Any = pickle.load(f)
    result = runner(None)
    if MPI.COMM_WORLD.rank == 0:
        partial = f"{argv[1]}.partial"
        with open(partial, "wb") as f:
            f.write(dumps(result))
        os.replace(partial, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
