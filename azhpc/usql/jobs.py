"""ADLA's job vocabulary and the per-stage progress hook.

:class:`JobState` and :class:`JobResult` are ADLA's own words; :class:`StageProgress` is a plain
callback object the executor calls as steps start and finish (no UI imports: a notebook widget
or a text printer subclasses it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["JobResult", "JobState", "StageEvent", "StageProgress"]


class JobState(enum.Enum):
    """Where an ADLA job is in its life."""

    ACCEPTED = "Accepted"
    COMPILING = "Compiling"
    QUEUED = "Queued"
    RUNNING = "Running"
    ENDED = "Ended"


class JobResult(enum.Enum):
    """How an ended ADLA job ended (``NONE`` while it has not)."""

    NONE = "None"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


@dataclass(frozen=True)
class StageEvent:
    """One step's progress: which step, how many steps, rows produced (when known), seconds."""

    step_id: int
    steps: int
    kind: str
    label: str
    rows: int | None = None
    seconds: float = 0.0
    groups: int | None = None


class StageProgress:
    """Progress callbacks; the default methods do nothing. Subclass and override what you need."""

    def stage_started(self, event: StageEvent) -> None:
        """A step is starting."""

    def stage_finished(self, event: StageEvent) -> None:
        """A step has finished; ``event.rows`` holds the rows written or reduced, if known."""

    def stage_failed(self, event: StageEvent, error: BaseException) -> None:
        """A step has failed with ``error`` (a ``UsqlError``)."""
