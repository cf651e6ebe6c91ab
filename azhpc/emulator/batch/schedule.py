"""The autoscale schedule of an emulated account: samples and periodic evaluation.

One thread samples every autoscaled pool's task and node metrics every 30 seconds of the
service's clock and evaluates its formula every ``autoScaleEvaluationInterval`` (at once when
autoscale is enabled, then on that schedule), resizing the pool as the formula says through
:meth:`~azhpc.emulator.batch.runner.Engine.resize` with the formula's
``$NodeDeallocationOption``. A failed run (``autoScaleRun.error``) leaves the targets as they
were.

The service's clock runs fast: a minute of it lasts ``Timings.autoscale_minute`` real seconds
(0.04 s by default: Batch's shortest interval, 5 minutes, is 0.2 s), so sample windows, the
samples' one-minute delay and evaluation intervals keep their proportions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azhpc.emulator.batch.autoscale import (
    SAMPLE_SECONDS,
    AutoscaleRun,
    SampleHistory,
    evaluate,
    sample_pool,
)
from azhpc.emulator.batch.model import Pool, PoolState

if TYPE_CHECKING:
    from azhpc.emulator.batch.formula import Formula
    from azhpc.emulator.batch.runner import Engine

__all__ = ["AutoscaleSchedule"]


@dataclass
class _Autoscaled:
    """An autoscaled pool's formula, evaluation schedule and samples (service seconds)."""

    pool: Pool
    formula: Formula
    interval: float
    history: SampleHistory
    next_evaluation: float
    last_sample: int = -1


class AutoscaleSchedule:
    """Samples and evaluates the autoscaled pools of an :class:`Engine`'s store.

    Parameters
    ----------
    engine
        The engine whose pools are resized.
    minute
        Real seconds per minute of the service's clock.
    """

    def __init__(self, engine: Engine, minute: float) -> None:
        self.engine = engine
        self.store = engine.store
        self.minute = minute
        #: Service seconds per real second, and the real time the service clock started.
        self._scale = 60.0 / minute
        self._clock_start = time.monotonic()
        self._pools: dict[str, _Autoscaled] = {}
        self._thread = threading.Thread(
            target=self._loop, name="batch-emulator-autoscale", daemon=True
        )

    def start(self) -> None:
        """Start the sampling and evaluation thread."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after the store's ``stopping`` is set)."""
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def now(self) -> float:
        """The service's clock, in its seconds."""
        return (time.monotonic() - self._clock_start) * self._scale

    def enable(self, pool: Pool, formula: Formula, interval_seconds: float) -> None:
        """Evaluate ``formula`` now and then every ``interval_seconds`` (service time), on the
        pool's samples (kept across formula changes). Caller holds the lock."""
        now = self.now()
        state = self._pools.get(pool.id)
        if state is None or state.pool is not pool:
            state = _Autoscaled(pool, formula, interval_seconds, SampleHistory(), now)
            self._pools[pool.id] = state
            self._sample(state, now)
        state.formula, state.interval = formula, interval_seconds
        # The formula page: a new interval starts "a new schedule ... at the time at which the
        # request to enable autoscaling was issued".
        state.next_evaluation = now + interval_seconds
        self._evaluate(state, now)

    def disable(self, pool: Pool) -> None:
        """Stop sampling the pool and evaluating its formula. Caller holds the lock."""
        state = self._pools.get(pool.id)
        if state is not None and state.pool is pool:
            del self._pools[pool.id]

    def evaluate(self, pool: Pool, formula: Formula) -> AutoscaleRun:
        """Run a formula on the pool's samples without applying it. Caller holds the lock."""
        state = self._pools.get(pool.id)
        history = state.history if state is not None and state.pool is pool else None
        return evaluate(
            self.store, pool, formula, history=history, now=self.now(), scale=self._scale
        )

    def _sample(self, state: _Autoscaled, now: float) -> None:
        slot = int(now // SAMPLE_SECONDS)
        if slot > state.last_sample:
            state.last_sample = slot
            state.history.record(now, sample_pool(self.store, state.pool))

    def _evaluate(self, state: _Autoscaled, now: float) -> None:
        pool = state.pool
        run = evaluate(
            self.store, pool, state.formula, history=state.history, now=now, scale=self._scale
        )
        pool.auto_scale_run = run.body
        if run.dedicated is None or run.low_priority is None:
            return  # a failed run leaves the targets as they were
        targets = (pool.target_dedicated, pool.target_low_priority)
        if (run.dedicated, run.low_priority) != targets or (
            run.deallocation != self.engine.deallocation(pool)
        ):
            self.engine.resize(pool, run.dedicated, run.low_priority, deallocation=run.deallocation)

    def _loop(self) -> None:
        store = self.store
        # Tick at a quarter of the sample period so that no 30-second slot is skipped.
        tick = self.minute * SAMPLE_SECONDS / 60.0 / 4
        while not store.stopping.wait(tick):
            with store.lock:
                now = self.now()
                for pool_id, state in list(self._pools.items()):
                    pool = state.pool
                    alive = store.pools.get(pool_id) is pool and pool.state == PoolState.ACTIVE
                    if not alive or not pool.enable_auto_scale:
                        del self._pools[pool_id]
                        continue
                    self._sample(state, now)
                    if now >= state.next_evaluation:
                        state.next_evaluation = now + state.interval
                        self._evaluate(state, now)
