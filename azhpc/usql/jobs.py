"""ADLA's job vocabulary and the per-stage progress hook.

:class:`JobState` and :class:`JobResult` are ADLA's own words; :class:`StageProgress` is a plain
callback object the executor calls as steps start and finish (no UI imports: a notebook widget
or a text printer subclasses it).
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from typing import TextIO

from azhpc.errors import ArgumentTypeError

__all__ = [
    "JobResult",
    "JobState",
    "StageEvent",
    "StageProgress",
    "TextStageProgress",
    "stage_progress",
]


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


class TextStageProgress(StageProgress):
    """One line per step as it finishes or fails (``progress=True``): ``[2/4] query @r: 12
    rows in 0.01 s``, to ``stream`` (default ``sys.stderr``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def _line(self, event: StageEvent, text: str) -> None:
        stream = self.stream or sys.stderr
        print(f"[{event.step_id}/{event.steps}] {event.kind} {event.label}: {text}", file=stream)

    def stage_finished(self, event: StageEvent) -> None:
        rows = "" if event.rows is None else f"{event.rows:,} rows in "
        self._line(event, f"{rows}{event.seconds:.2f} s")

    def stage_failed(self, event: StageEvent, error: BaseException) -> None:
        self._line(event, "failed")


_HOOKS = ("stage_started", "stage_finished", "stage_failed")


def stage_progress(progress: StageProgress | bool | None) -> StageProgress | None:
    """What a ``progress=`` argument means: ``None``/``False`` no callbacks, ``True`` a
    :class:`TextStageProgress`, else the callback object itself.

    Raises
    ------
    ArgumentTypeError
        ``progress`` is none of these (checked before the job starts).
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        return TextStageProgress()
    if all(callable(getattr(progress, hook, None)) for hook in _HOOKS):
        return progress
    raise ArgumentTypeError(
        "progress= takes True (a line per step), False or None (nothing), or a "
        f"StageProgress object (callbacks per step), got {type(progress).__name__}: "
        f"{progress!r}"
    )
