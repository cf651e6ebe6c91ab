"""The executor: runs a :class:`~azhpc.usql.planner.Plan` on DuckDB, step by step.

Extract and query steps become lazy DuckDB views, so an EXTRACT -> WHERE -> GROUP BY ->
OUTPUT chain runs as one vectorised DuckDB pipeline when the OUTPUT pulls it; REDUCE steps
materialise their input, call the reducer through ``run_groups`` and store the result. Outputs
go to temporary lake files and are renamed into place only when every step has succeeded, so a
failed job leaves no partial output. Failures become :class:`UsqlError` (``Step 'x' failed:``
with the cause chained) — C# exceptions at their script position, extraction failures with the
file and row.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azhpc.usql import bound as b
from azhpc.usql.errors import ErrorCode, Span, UsqlError
from azhpc.usql.extract import EXTRACT_MARK, diagnose, extract_sql, list_files, virtual_value
from azhpc.usql.jobs import StageEvent, StageProgress, stage_progress
from azhpc.usql.output import output_sql, write_batches
from azhpc.usql.planner import Plan, Step, StepKind
from azhpc.usql.reducer import ReducerFailure, RunGroups, run_groups_in_process
from azhpc.usql.sqlgen import RUNTIME_MARK

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from azhpc.lake.rooted import RootedFileSystem

__all__ = ["ExecutionResult", "execute_plan"]


@dataclass
class ExecutionResult:
    """What a finished run produced.

    Attributes
    ----------
    outputs : dict
        Lake path of each OUTPUT to the number of rows written.
    stages : list of StageEvent
        One finished event per step, in order.
    """

    plan: Plan
    outputs: dict[str, int] = field(default_factory=dict)
    stages: list[StageEvent] = field(default_factory=list)
    connection: Any = None
    kept: dict[str, str] = field(default_factory=dict)

    def rowset(self, name: str) -> pd.DataFrame:
        """A rowset of the run as a DataFrame (kept with ``keep=`` when no OUTPUT read it)."""
        key = name.lstrip("@")
        if self.connection is None or key not in self.kept:
            known = ", ".join(f"@{k}" for k in self.kept) or "none"
            raise KeyError(f"rowset @{key} is not available (available: {known})")
        relation = self.plan.rowsets[key]
        step = next(s for s in self.plan.steps if s.relation == relation)
        frame = self.connection.sql(f"SELECT * FROM {self.kept[key]}").df()
        frame.columns = step.schema.names
        return frame

    def close(self) -> None:
        """Release the DuckDB connection that holds the rowsets."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class _Run:
    def __init__(self, plan: Plan, lake: RootedFileSystem, run_groups, progress, scratch: str):
        import duckdb

        self.plan = plan
        self.lake = lake
        self.run_groups = run_groups
        self.progress = progress
        self.scratch = scratch
        self.con: duckdb.DuckDBPyConnection = duckdb.connect()
        self.files: dict[str, tuple[b.BoundExtract, list]] = {}
        self.pending: list[tuple[str, str]] = []
        self.producers = {s.relation: s for s in plan.steps if s.relation}
        opened = getattr(progress, "connection_opened", None)
        if opened is not None:  # lets a job interrupt a running query when it is cancelled
            opened(self.con)

    def error(self, code: ErrorCode, message: str, span: Span | None, **extra) -> UsqlError:
        return UsqlError(
            code, message, script=self.plan.name, span=span, source=self.plan.source, **extra
        )

    def upstream_extracts(self, step: Step) -> list[str]:
        seen: list[str] = []
        todo = list(step.inputs) + ([step.relation] if step.relation else [])
        while todo:
            relation = todo.pop()
            if relation in seen or relation not in self.producers:
                continue
            seen.append(relation)
            todo.extend(self.producers[relation].inputs)
        return [r for r in seen if r in self.files]

    def translate(self, step: Step, exc: BaseException) -> UsqlError:
        message = str(exc)
        if RUNTIME_MARK in message:
            tail = message.split(RUNTIME_MARK + "|", 1)[1]
            line, column, length, text = tail.split("|", 3)
            span = Span(int(line), int(column), 0, int(length)) if int(line) else step.span
            return self.error(ErrorCode.EXPRESSION, text.strip(), span)
        for relation in self.upstream_extracts(step):
            extract, files = self.files[relation]
            failure = diagnose(extract, files, self.lake)
            if failure is not None:
                code = ErrorCode.COLUMN_COUNT if failure.column_count else ErrorCode.CONVERSION
                producer = self.producers[relation]
                return self.error(
                    code,
                    f"{failure.file}, row {failure.row}: {failure.message} "
                    "(use silent: true to skip bad rows)",
                    producer.span,
                    file=failure.file,
                    row=failure.row,
                )
        if EXTRACT_MARK in message:
            return self.error(ErrorCode.CONVERSION, message.split("|", 1)[-1], step.span)
        return self.error(
            ErrorCode.INTERNAL,
            f"Step '{step.label}' failed: {type(exc).__name__}: {message}",
            step.span,
        )

    def run_step(self, step: Step) -> StageEvent:
        started = time.perf_counter()
        rows = groups = None
        if step.kind is StepKind.EXTRACT:
            extract = step.payload
            assert isinstance(extract, b.BoundExtract)
            files = list_files(extract, self.lake)
            if isinstance(files, str):
                raise self.error(
                    ErrorCode.FILE_NOT_FOUND, f"input file '{files}' does not exist", step.span
                )
            if step.file_filter is not None:
                files = self.eliminate(extract, files, step.file_filter)
            self.files[step.relation] = (extract, files)
            sql = extract_sql(extract, files, self.lake, self.scratch)
            self.con.execute(f"CREATE VIEW {step.relation} AS {sql}")
        elif step.kind is StepKind.QUERY:
            self.con.execute(f"CREATE VIEW {step.relation} AS {step.sql}")
        elif step.kind is StepKind.REDUCE:
            from azhpc.usql.reduce_step import (
                run_reduce,  # lazy: pandas, numpy and numexpr, only when a REDUCE runs
            )

            assert isinstance(step.payload, b.BoundReduce)
            groups, rows = run_reduce(self.con, step.payload, self.run_groups, step.relation)
        else:
            rows = self.write(step)
        return StageEvent(
            step.id,
            len(self.plan.steps),
            step.kind.value,
            step.label,
            rows,
            time.perf_counter() - started,
            groups,
        )

    def eliminate(self, extract: b.BoundExtract, files: list, predicate: str) -> list:
        """The files of a file set for which ``predicate`` (on virtual columns) holds."""
        if not files:
            return files
        columns = extract.schema.columns
        rows = []
        for n, matched in enumerate(files):
            cells = [str(n)]
            for i, column in enumerate(columns):
                value = matched.values.get(column.name) if i not in extract.data_columns else None
                cells.append(virtual_value(value, column.type))
            rows.append("(" + ", ".join(cells) + ")")
        names = ", ".join(["n", *(f"c{i}" for i in range(len(columns)))])
        sql = f"SELECT n FROM (VALUES {', '.join(rows)}) AS t0({names}) WHERE {predicate}"
        try:
            keep = {row[0] for row in self.con.execute(sql).fetchall()}
        except Exception:  # a predicate that fails on path values is left to the query
            return files
        return [matched for n, matched in enumerate(files) if n in keep]

    def write(self, step: Step) -> int:
        output = step.payload
        assert isinstance(output, b.BoundOutput)
        temporary = f"{output.path}.azhpc-{uuid.uuid4().hex[:12]}.tmp"
        self.pending.append((temporary, output.path))
        reader = self.con.sql(output_sql(output)).to_arrow_reader(1 << 16)
        with self.lake.open(temporary, "wb") as sink:
            return write_batches(reader, sink, output)

    def reducer_error(self, step: Step, failure: ReducerFailure) -> UsqlError:
        if failure.kind == "produce":
            return self.error(ErrorCode.PRODUCE_MISMATCH, failure.message, step.span)
        return self.error(
            ErrorCode.PYTHON_EXCEPTION,
            f"the Python reducer raised {failure.message}",
            step.span,
            details=failure.traceback_text,
        )

    def run(self) -> ExecutionResult:
        import duckdb

        result = ExecutionResult(self.plan)
        total = len(self.plan.steps)
        try:
            for step in self.plan.steps:
                event = StageEvent(step.id, total, step.kind.value, step.label)
                self.progress.stage_started(event)
                try:
                    finished = self.run_step(step)
                except UsqlError as exc:
                    self.progress.stage_failed(event, exc)
                    raise
                except ReducerFailure as exc:
                    error = self.reducer_error(step, exc)
                    self.progress.stage_failed(event, error)
                    raise error from None
                except duckdb.Error as exc:
                    error = self.translate(step, exc)
                    self.progress.stage_failed(event, error)
                    raise error from exc
                except Exception as exc:
                    remote = getattr(exc, "remote_exception", None)
                    if isinstance(remote, ReducerFailure):
                        error = self.reducer_error(step, remote)
                    elif getattr(exc, "remote_traceback", None):
                        error = self.error(
                            ErrorCode.PYTHON_EXCEPTION,
                            f"the Python reducer failed: {exc}",
                            step.span,
                            details=str(exc.remote_traceback),  # type: ignore[attr-defined]
                        )
                    else:
                        error = self.error(
                            ErrorCode.INTERNAL,
                            f"Step '{step.label}' failed: {type(exc).__name__}: {exc}",
                            step.span,
                        )
                    self.progress.stage_failed(event, error)
                    raise error from exc
                result.stages.append(finished)
                if step.kind is StepKind.OUTPUT and finished.rows is not None:
                    assert isinstance(step.payload, b.BoundOutput)
                    result.outputs[step.payload.path] = finished.rows
                self.progress.stage_finished(finished)
            for temporary, final in self.pending:
                self.lake.mv(temporary, final)
            self.pending.clear()
        finally:
            for temporary, _ in self.pending:
                try:
                    self.lake.rm(temporary)
                except OSError:
                    pass
        return result


def execute_plan(
    plan: Plan,
    lake: RootedFileSystem,
    *,
    run_groups: RunGroups | None = None,
    progress: StageProgress | bool | None = None,
    keep_connection: bool = False,
) -> ExecutionResult:
    """Run a plan against a lake.

    Parameters
    ----------
    plan : Plan
    lake : RootedFileSystem
        Where script paths resolve (a lake's :meth:`~azhpc.lake.Lake.filesystem`).
    run_groups : callable, optional
        ``run_groups(reducer, frames) -> frames``; default: a loop in this process.
    progress : StageProgress or bool, optional
        Receives per-step events (``True``: a line per step on stderr).
    keep_connection : bool
        Keep the DuckDB connection so :meth:`ExecutionResult.rowset` works.

    Raises
    ------
    UsqlError
        When a step fails; nothing is written to the OUTPUT paths then.
    """
    with tempfile.TemporaryDirectory(prefix="azhpc-usql-") as scratch:
        run = _Run(
            plan,
            lake,
            run_groups or run_groups_in_process,
            stage_progress(progress) or StageProgress(),
            scratch,
        )
        try:
            result = run.run()
            if keep_connection:
                # views may read scratch copies of lake files: materialise what is kept
                for name, relation in plan.rowsets.items():
                    table = f"kept_{relation}"
                    run.con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {relation}")
                    result.kept[name] = table
                result.connection = run.con
            else:
                run.con.close()
            return result
        except BaseException:
            run.con.close()
            raise
