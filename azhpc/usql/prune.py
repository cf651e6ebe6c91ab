"""File-set elimination: WHERE predicates on virtual columns decide which files are read.

For an EXTRACT over a file set (``/logs/{date:yyyy}/{date:MM}/{name}.csv``), every rowset that
reads it is inspected. When each reader is a SELECT whose WHERE has conjuncts (``&&``-parts)
that use only the EXTRACT's virtual columns, those conjuncts are evaluated once per *file*,
on the values the path gives, before anything is read; a file for which every reader's
conjuncts are false is never opened. Any other reader (a REDUCE, an OUTPUT, a rowset kept for
inspection, a RIGHT/FULL join that could pad the extract's side with nulls, a second mention)
turns elimination off for that EXTRACT, so results never change — only the files read do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from azhpc.usql import bound as b
from azhpc.usql.sqlgen import SqlGen

__all__ = ["file_filters"]

#: Joins after which a WHERE on the first source's columns still only drops its own rows.
_SAFE_JOINS = frozenset({"INNER", "LEFT", "CROSS", "LEFT_SEMI", "LEFT_ANTI"})


def _children(node: object) -> Iterator[object]:
    for field in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, field.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, tuple):
                yield from item
            elif dataclasses.is_dataclass(item) and not isinstance(item, type):
                yield item


def _columns(expr: object) -> Iterator[b.BColumn]:
    if isinstance(expr, b.BColumn):
        yield expr
        return
    for child in _children(expr):
        yield from _columns(child)


def _mentions(query: object, relation: str) -> int:
    """How many times ``relation`` is read anywhere inside ``query``."""
    count = 0
    if isinstance(query, b.BoundSource) and query.relation == relation:
        count += 1
    if isinstance(query, b.BoundReduce) and query.input == relation:
        count += 1
    if isinstance(query, b.BoundOutput) and query.relation == relation:
        count += 1
    if dataclasses.is_dataclass(query) and not isinstance(query, type):
        for child in _children(query):
            count += _mentions(child, relation)
    return count


def _conjuncts(expr: b.BoundExpr) -> Iterator[b.BoundExpr]:
    if isinstance(expr, b.BBinary) and expr.op is b.BinOp.AND:
        yield from _conjuncts(expr.left)
        yield from _conjuncts(expr.right)
    else:
        yield expr


def _reader_filter(query: object, relation: str, virtual: set[int], gen: SqlGen) -> str | None:
    """The SQL of the conjuncts of ``query`` that only use virtual columns, else ``None``."""
    if not isinstance(query, b.BoundSelect) or query.where is None or not query.sources:
        return None
    if query.sources[0].relation != relation or _mentions(query, relation) != 1:
        return None
    if any(isinstance(s, b.BoundJoin) and s.kind not in _SAFE_JOINS for s in query.steps):
        return None
    usable = []
    for part in _conjuncts(query.where):
        columns = list(_columns(part))
        if columns and all(c.source == 0 and c.index in virtual for c in columns):
            usable.append(gen.expr(part))
    return " AND ".join(f"({u})" for u in usable) if usable else None


def file_filters(bound: b.BoundScript, keep: set[str]) -> dict[str, str]:
    """For each EXTRACT relation whose files can be eliminated: a predicate over ``t0.cI``.

    ``t0.cI`` is column ``I`` of the EXTRACT's schema (only virtual columns occur); a file is
    read when the predicate is true for the values its path gives.
    """
    gen = SqlGen()
    kept = {rel for rel, name, _, _ in bound.rowsets if name in keep}
    found: dict[str, str] = {}
    for relation, _, query, _ in bound.rowsets:
        if not isinstance(query, b.BoundExtract) or relation in kept:
            continue
        virtual = {i for i in range(len(query.schema.columns)) if i not in query.data_columns}
        if not virtual:
            continue
        readers = [q for _, _, q, _ in bound.rowsets if _mentions(q, relation)]
        readers += [o for o in bound.outputs if o.relation == relation]
        filters = [_reader_filter(r, relation, virtual, gen) for r in readers]
        if readers and all(f is not None for f in filters):
            found[relation] = " OR ".join(f"({f})" for f in filters)
    return found
