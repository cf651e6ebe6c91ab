"""The REDUCE step: split a rowset into groups, run the reducer, type the results.

Grouping is vectorised: the rowset is sorted by the ON columns (then PRESORT) in DuckDB, group
boundaries come from ``pandas.factorize`` codes, and each group is a slice with a fresh
0..n-1 index (as ADLA's Python extension documents). Results are checked against PRODUCE and
cast to its types in DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from azhpc.usql import bound as b
from azhpc.usql.reducer import PythonReducer, ReducerFailure, RunGroups
from azhpc.usql.types import Kind

if TYPE_CHECKING:
    import duckdb

__all__ = ["group_frames", "run_reduce"]


def group_frames(con: duckdb.DuckDBPyConnection, reduce: b.BoundReduce) -> list[pd.DataFrame]:
    """The input rowset as one DataFrame per group (user column names, sorted keys)."""
    names = reduce.input_schema.names
    order = []
    if reduce.keys:
        order += [f"c{k} ASC NULLS FIRST" for k in reduce.keys]
    order += [f"c{k} {'DESC NULLS LAST' if d else 'ASC NULLS FIRST'}" for k, d in reduce.presort]
    sql = f"SELECT * FROM {reduce.input}"
    if order:
        sql += " ORDER BY " + ", ".join(order)
    frame = con.sql(sql).df()
    frame.columns = names
    if not reduce.keys:
        return [frame] if len(frame) or reduce.keys is None else []
    if frame.empty:
        return []
    change = np.zeros(len(frame), dtype=bool)
    change[0] = True
    for k in reduce.keys:
        codes, _ = pd.factorize(frame.iloc[:, k], use_na_sentinel=False)
        change[1:] |= codes[1:] != codes[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], len(frame))
    return [
        frame.iloc[start:end].reset_index(drop=True)
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def _prepare(result: pd.DataFrame, schema: b.Schema) -> pd.DataFrame:
    frame = result.copy()
    for column in schema.columns:
        series = frame[column.name]
        if column.type.kind is Kind.STRING and series.dtype == object:
            mask = series.notna()
            if not series[mask].map(type).eq(str).all():
                frame[column.name] = series.where(~mask, series.astype(str))
        if not column.type.nullable and series.isna().any():
            raise ReducerFailure(
                "produce",
                f"PRODUCE column '{column.name}' is {column.type}, which is not nullable, but "
                "the reducer returned nulls in it",
                "",
            )
    return frame


def run_reduce(
    con: duckdb.DuckDBPyConnection, reduce: b.BoundReduce, run_groups: RunGroups, relation: str
) -> tuple[int, int]:
    """Run a REDUCE and define ``relation`` as its result; returns (groups, rows)."""
    frames = group_frames(con, reduce)
    reducer = PythonReducer(
        reduce.script, reduce.script_file, reduce.script_line, tuple(reduce.schema.names)
    )
    results = list(run_groups(reducer, frames)) if frames else []
    schema = reduce.schema
    if results:
        combined = pd.concat([_prepare(r, schema) for r in results], ignore_index=True)
    else:
        combined = pd.DataFrame({c.name: pd.Series([], dtype=object) for c in schema.columns})
    for column in schema.columns:
        if combined[column.name].isna().all():
            combined[column.name] = combined[column.name].astype(object)
    combined = combined[schema.names]
    combined.columns = [f"c{i}" for i in range(len(schema.columns))]
    staged = f"{relation}__frame"
    con.register(staged, combined)
    cols = ", ".join(f"CAST(c{i} AS {c.type.duckdb}) AS c{i}" for i, c in enumerate(schema.columns))
    con.execute(f"CREATE TEMP TABLE {relation} AS SELECT {cols} FROM {staged}")
    con.unregister(staged)
    return len(frames), len(combined)
