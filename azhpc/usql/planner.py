"""The planner: a bound script becomes a DAG of steps, in an order that respects it.

Step kinds: ``extract`` (files to a rowset), ``query`` (filter/project, aggregate, join, union,
sort/fetch — one DuckDB SELECT), ``reduce`` (the Python reducer) and ``output``. Rowsets no
OUTPUT needs are dropped, as ADLA did, unless the caller asks to keep them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from azhpc.usql import bound as b
from azhpc.usql.errors import Span
from azhpc.usql.prune import file_filters
from azhpc.usql.sqlgen import SqlGen

__all__ = ["Plan", "Step", "StepKind", "plan"]


class StepKind(enum.Enum):
    """What a step does."""

    EXTRACT = "extract"
    QUERY = "query"
    REDUCE = "reduce"
    OUTPUT = "output"


@dataclass(frozen=True)
class Step:
    """One node of the plan.

    ``relation`` is the DuckDB relation the step defines (``None`` for outputs); ``inputs`` the
    relations it reads; ``sql`` the SELECT of a query step; ``payload`` the bound statement;
    ``file_filter`` (extract steps over a file set) the predicate on virtual columns that
    decides which files are read (:mod:`~azhpc.usql.prune`).
    """

    id: int
    kind: StepKind
    label: str
    relation: str | None
    inputs: tuple[str, ...]
    schema: b.Schema
    sql: str | None = None
    payload: b.BoundExtract | b.BoundReduce | b.BoundOutput | None = None
    span: Span | None = None
    file_filter: str | None = None

    def __str__(self) -> str:
        reads = f" <- {', '.join(self.inputs)}" if self.inputs else ""
        return f"[{self.id}] {self.kind.value} {self.label}{reads}"


@dataclass(frozen=True)
class Plan:
    """The steps of a script in execution order (each after the steps it reads)."""

    name: str
    source: str
    steps: tuple[Step, ...]
    rowsets: dict[str, str]

    def describe(self) -> str:
        """One line per step."""
        return "\n".join(str(s) for s in self.steps)


def _relations(query: b.BoundQuery) -> set[str]:
    match query:
        case b.BoundSelect():
            found: set[str] = set()
            for src in query.sources:
                if src.relation is not None:
                    found.add(src.relation)
                if src.query is not None:
                    found |= _relations(src.query)
            return found
        case b.BoundSetOp():
            return _relations(query.left) | _relations(query.right)
        case b.BoundReduce():
            return {query.input}
    return set()


def plan(bound: b.BoundScript, keep: Iterable[str] = ()) -> Plan:
    """Turn a bound script into a :class:`Plan`.

    Parameters
    ----------
    bound : BoundScript
    keep : iterable of str
        Rowset names (with or without ``@``) to compute even if no OUTPUT reads them.
    """
    gen = SqlGen()
    keep_names = {k.lstrip("@") for k in keep}
    candidates: list[Step] = []
    latest: dict[str, str] = {}
    for relation, name, query, span in bound.rowsets:
        inputs = tuple(sorted(_relations(query)))
        label = f"@{name}"
        if isinstance(query, b.BoundExtract):
            step = Step(
                0, StepKind.EXTRACT, label, relation, (), query.schema, payload=query, span=span
            )
        elif isinstance(query, b.BoundReduce):
            step = Step(
                0, StepKind.REDUCE, label, relation, inputs, query.schema, payload=query, span=span
            )
        else:
            step = Step(
                0,
                StepKind.QUERY,
                label,
                relation,
                inputs,
                query.schema,
                gen.query(query),
                span=span,
            )
        candidates.append(step)
        latest[name] = relation
    for output in bound.outputs:
        candidates.append(
            Step(
                0,
                StepKind.OUTPUT,
                f"OUTPUT {output.path}",
                None,
                (output.relation,),
                output.schema,
                payload=output,
                span=output.span,
            )
        )
    needed = {latest[k] for k in keep_names if k in latest}
    for step in candidates:
        if step.kind is StepKind.OUTPUT:
            needed |= set(step.inputs)
    for step in reversed(candidates):
        if step.relation in needed:
            needed |= set(step.inputs)
    steps = []
    for step in candidates:
        if step.kind is StepKind.OUTPUT or step.relation in needed:
            steps.append(
                Step(
                    len(steps) + 1,
                    step.kind,
                    step.label,
                    step.relation,
                    step.inputs,
                    step.schema,
                    step.sql,
                    step.payload,
                    step.span,
                )
            )
    rowsets = {name: rel for name, rel in latest.items() if rel in needed}
    filters = file_filters(bound, keep_names)
    steps = [dataclasses.replace(s, file_filter=filters.get(s.relation or "")) for s in steps]
    return Plan(bound.name, bound.source, tuple(steps), rowsets)
