"""REDUCE groups on a session's backend: :class:`PoolRunGroups`, a ``run_groups`` hook.

The groups of a REDUCE are contiguous row ranges of one sorted frame
(:class:`~azhpc.usql.reduce_step.Groups`). They are cut into ``parallelism`` batches of
similar row counts; the frame is staged once for the scatter job (the local backend maps it
from shared memory) and each task runs the reducer over its batch and returns one frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azhpc import scatter
from azhpc.usql.reducer import ReduceBatch

if TYPE_CHECKING:
    import pandas as pd

    from azhpc.core.job import Job
    from azhpc.session import Session

__all__ = ["PoolRunGroups"]


class PoolRunGroups:
    """A ``run_groups`` that spreads REDUCE groups over a session's backend.

    The groups (contiguous row ranges of one sorted frame) are cut into about
    ``parallelism * tasks_per_slot`` batches holding similar numbers of rows; the frame is
    staged once for the job and each task runs the reducer over its batch. With
    ``parallelism <= 1``, or a single group, the groups run in this process: no process hop.

    Parameters
    ----------
    session : Session
        Where the tasks run.
    parallelism : int
        ADLA's AUs: how many tasks the groups are cut into (at most one per group).
    tasks_per_slot : int
        Batches per unit of parallelism (1 measured fastest, see ``docs/usql.md``).
    on_job : callable, optional
        Called with each scatter :class:`~azhpc.core.job.Job` as it starts.
    """

    def __init__(
        self,
        session: Session,
        parallelism: int,
        *,
        tasks_per_slot: int = 1,
        name: str = "usql",
        on_job: Any = None,
    ) -> None:
        self.session = session
        self.parallelism = parallelism
        self.tasks_per_slot = tasks_per_slot
        self.name = name
        self.on_job = on_job
        self.jobs: list[Job] = []

    def __call__(self, reducer: Any, groups: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
        import numpy as np

        from azhpc.usql.reduce_step import (
            Groups,  # lazy: pandas, numpy and numexpr, only when a REDUCE runs
        )

        if not isinstance(groups, Groups):
            groups = _as_groups(groups)
        count = min(len(groups), max(1, self.parallelism) * self.tasks_per_slot)
        if self.parallelism <= 1 or count <= 1:
            return [ReduceBatch(reducer)(groups.frame, (groups.starts, groups.ends))]
        sizes = np.cumsum(groups.ends - groups.starts)
        cuts = np.searchsorted(sizes, sizes[-1] * np.arange(1, count) / count, side="left") + 1
        edges = sorted({0, *np.minimum(cuts, len(groups)).tolist(), len(groups)})
        spans = [(a, b) for a, b in itertools.pairwise(edges) if b > a]
        pieces = [(groups.starts[a:b], groups.ends[a:b]) for a, b in spans]
        job = scatter.run_pieces(
            self.session,
            ReduceBatch(reducer),
            pieces,
            name=f"{self.name}: REDUCE",
            gather=list,
            shared=groups.frame,
        )
        self.jobs.append(job)
        if self.on_job is not None:
            self.on_job(job)
        return scatter.wait(job, self.session, progress=False)


def _as_groups(frames: Sequence[pd.DataFrame]) -> Any:
    import numpy as np
    import pandas as pd

    from azhpc.usql.reduce_step import (
        Groups,  # lazy: pandas, numpy and numexpr, only when a REDUCE runs
    )

    sizes = np.array([len(f) for f in frames], dtype=np.int64)
    ends = np.cumsum(sizes)
    return Groups(pd.concat(list(frames), ignore_index=True), ends - sizes, ends)
