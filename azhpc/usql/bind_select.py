"""Binding a SELECT expression: sources and joins, WHERE, GROUP BY/HAVING, items, ORDER BY."""

from __future__ import annotations

from typing import TYPE_CHECKING

from azhpc.usql import bound as b
from azhpc.usql import nodes as n
from azhpc.usql.bind_expr import Scope, ScopeSource, children, contains_aggregate
from azhpc.usql.errors import ErrorCode, Span
from azhpc.usql.types import BOOL, Kind

if TYPE_CHECKING:
    from azhpc.usql.binder import Binder

__all__ = ["bind_select"]

_RIGHT_ONLY = (n.JoinKind.RIGHT_SEMI, n.JoinKind.RIGHT_ANTI)
_LEFT_ONLY = (n.JoinKind.LEFT_SEMI, n.JoinKind.LEFT_ANTI)


def _nullable(schema: b.Schema) -> b.Schema:
    return b.Schema(tuple(b.Column(c.name, c.type.with_nullable(True)) for c in schema.columns))


def _replace(source: b.BoundSource, **changes) -> b.BoundSource:
    fields = {
        "alias": source.alias,
        "schema": source.schema,
        "relation": source.relation,
        "values": source.values,
        "query": source.query,
        "visible": source.visible,
    }
    fields.update(changes)
    return b.BoundSource(**fields)


def _bind_sources(binder: Binder, query: n.Select):
    """Sources, join/apply steps and the scope the rest of the query sees."""
    sources: list[b.BoundSource] = []
    steps: list[b.BoundJoin | b.BoundApply] = []
    scope = Scope(clause="ON")
    if query.source is None:
        return sources, steps, scope
    sources.append(binder.bind_source(query.source, 0))
    scope.sources.append(ScopeSource(sources[0].alias, sources[0].schema, 0))
    for k, step in enumerate(query.joins):
        index = len(sources)
        if isinstance(step, n.Apply):
            array = binder.exprs.bind(step.expr, Scope(scope.sources, False, "EXPLODE"))
            if array.type.kind is not Kind.ARRAY:
                raise binder.error(
                    ErrorCode.TYPE_MISMATCH,
                    f"EXPLODE needs a SQL.ARRAY, not {array.type}",
                    step.span,
                )
            if len(step.columns) != 1:
                raise binder.error(
                    ErrorCode.SCHEMA_MISMATCH,
                    "EXPLODE of a SQL.ARRAY produces one column",
                    step.span,
                )
            assert array.type.element is not None
            element = array.type.element
            if step.outer:
                element = element.with_nullable(True)
            schema = b.Schema((b.Column(step.columns[0], element),))
            sources.append(b.BoundSource(step.alias, schema))
            steps.append(b.BoundApply(index, array, step.outer))
            scope.sources.append(ScopeSource(step.alias, schema, index))
            continue
        new = binder.bind_source(step.source, index)
        if step.kind in _RIGHT_ONLY and k != 0:
            raise binder.error(
                ErrorCode.NOT_SUPPORTED,
                f"not supported: {step.kind.value} after another join",
                step.span,
            )
        if any(s.alias == new.alias for s in sources):
            raise binder.error(
                ErrorCode.DUPLICATE_COLUMN,
                f"the alias '{new.alias}' is used twice in FROM; give one an AS alias",
                step.span,
            )
        if step.kind in (n.JoinKind.RIGHT, n.JoinKind.FULL):
            for j, src in enumerate(sources):
                sources[j] = _replace(src, schema=_nullable(src.schema))
                scope.sources[j].schema = sources[j].schema
        if step.kind in (n.JoinKind.LEFT, n.JoinKind.FULL):
            new = _replace(new, schema=_nullable(new.schema))
        sources.append(new)
        scope.sources.append(ScopeSource(new.alias, new.schema, index))
        condition = None
        if step.condition is not None:
            condition = binder.exprs.bind(step.condition, Scope(scope.sources, False, "ON"))
            if condition.type != BOOL:
                raise binder.error(
                    ErrorCode.TYPE_MISMATCH,
                    f"the ON condition must be bool, not {condition.type}",
                    step.span,
                )
        steps.append(b.BoundJoin(step.kind.name, index, condition))
        if step.kind in _LEFT_ONLY:
            sources[index] = _replace(new, visible=False)
            scope.sources[index].visible = False
        elif step.kind in _RIGHT_ONLY:
            for j in range(index):
                sources[j] = _replace(sources[j], visible=False)
                scope.sources[j].visible = False
    return sources, steps, scope


def _item_name(expr: n.Expr, bound_expr: b.BoundExpr) -> str | None:
    if isinstance(bound_expr, b.BColumn):
        if isinstance(expr, n.Name):
            return expr.name
        if isinstance(expr, n.Member):
            return expr.name
    return None


def _check_grouped(binder, expr: b.BoundExpr, groups, span: Span | None, clause: str) -> None:
    if expr in groups or isinstance(expr, b.BAggregate | b.BLiteral):
        return
    if isinstance(expr, b.BColumn):
        raise binder.error(
            ErrorCode.NOT_GROUPED,
            f"column '{expr.name}' in {clause} is neither in GROUP BY nor inside an aggregate",
            span,
        )
    for child in children(expr):
        _check_grouped(binder, child, groups, span, clause)


def bind_select(binder: Binder, query: n.Select) -> b.BoundSelect:
    """Bind one SELECT (see :mod:`azhpc.usql.binder`)."""
    sources, steps, scope = _bind_sources(binder, query)
    exprs = binder.exprs
    where = None
    if query.where is not None:
        where = exprs.bind(query.where, Scope(scope.sources, False, "WHERE"))
        if where.type != BOOL:
            raise binder.error(
                ErrorCode.TYPE_MISMATCH,
                f"the WHERE condition must be bool, not {where.type}",
                getattr(query.where, "span", query.span),
            )
    groups = tuple(exprs.bind(g, Scope(scope.sources, False, "GROUP BY")) for g in query.group_by)

    items: list[b.BoundExpr] = []
    names: list[str] = []
    spans: list[Span | None] = []
    agg_scope = Scope(scope.sources, True, "SELECT")
    for item in query.items:
        if isinstance(item, n.Star):
            matched = False
            for src in scope.sources:
                if not src.visible or (item.qualifier and src.alias != item.qualifier):
                    continue
                matched = True
                for idx, column in enumerate(src.schema.columns):
                    items.append(b.BColumn(src.index, idx, column.type, column.name))
                    names.append(column.name)
                    spans.append(item.span)
            if not matched:
                what = f"'{item.qualifier}'" if item.qualifier else "a source"
                raise binder.error(
                    ErrorCode.UNKNOWN_ROWSET, f"{what}.* names no source in FROM", item.span
                )
            continue
        bound_expr = exprs.bind(item.expr, agg_scope)
        name = item.alias or _item_name(item.expr, bound_expr)
        if name is None:
            raise binder.error(
                ErrorCode.COLUMN_NAME_MISSING,
                "this SELECT expression needs a column name: add AS name",
                item.span,
            )
        if bound_expr.type.kind is Kind.NULL:
            raise binder.error(
                ErrorCode.TYPE_MISMATCH,
                f"column '{name}' is only null; cast it, e.g. (string)null",
                item.span,
            )
        items.append(bound_expr)
        names.append(name)
        spans.append(item.span)

    for i, name in enumerate(names):
        if name in names[:i]:
            raise binder.error(
                ErrorCode.DUPLICATE_COLUMN,
                f"the SELECT produces column '{name}' twice; rename one with AS",
                spans[i],
            )

    having = None
    if query.having is not None:
        having = exprs.bind(query.having, Scope(scope.sources, True, "HAVING"))
        if having.type != BOOL:
            raise binder.error(
                ErrorCode.TYPE_MISMATCH, "the HAVING condition must be bool", query.span
            )
    grouped = bool(groups) or having is not None or any(contains_aggregate(i) for i in items)
    if grouped:
        for item, span in zip(items, spans, strict=True):
            _check_grouped(binder, item, groups, span, "SELECT")
        if having is not None:
            _check_grouped(binder, having, groups, getattr(query.having, "span", None), "HAVING")

    if query.order_by and query.fetch is None:
        raise binder.error(
            ErrorCode.ORDER_BY_WITHOUT_FETCH,
            "ORDER BY in a SELECT needs FETCH (to order a result, use OUTPUT ... ORDER BY)",
            query.order_by[0].span,
        )
    order: list[tuple[b.BoundExpr | int, bool]] = []
    for entry in query.order_by:
        if isinstance(entry.expr, n.Name) and entry.expr.name in names:
            order.append((names.index(entry.expr.name), entry.descending))
            continue
        key = exprs.bind(entry.expr, Scope(scope.sources, grouped, "ORDER BY"))
        if grouped:
            _check_grouped(binder, key, groups, entry.span, "ORDER BY")
        order.append((key, entry.descending))

    schema = b.Schema(tuple(b.Column(nm, it.type) for nm, it in zip(names, items, strict=True)))
    return b.BoundSelect(
        schema,
        tuple(sources),
        tuple(steps),
        tuple(items),
        query.distinct,
        where,
        groups,
        grouped,
        having,
        tuple(order),
        query.offset,
        query.fetch,
    )
