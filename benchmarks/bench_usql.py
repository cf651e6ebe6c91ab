"""U-SQL benchmarks (issue 5), run by hand: ``python benchmarks/bench_usql.py [--repeat N]``.

1. A SearchLog-shaped TSV of 4 million rows (~300 MB, generated once into
   ``benchmarks/.data/``): EXTRACT -> WHERE -> GROUP BY with COUNT/SUM -> ORDER BY -> OUTPUT,
   against the same query written by hand in DuckDB (``read_csv`` with explicit columns,
   ``COPY ... TO`` csv). Target: <= 1.5x DuckDB. pandas read_csv+groupby is printed for context.
2. A Python reducer over 1,000 groups of 1,000 rows (1 million rows in all), from a TSV file to
   an output file, against pandas ``read_csv`` -> ``groupby(key).apply(fn)`` -> ``to_csv``.
   Targets: <= 1.2x at parallelism 1, <= 0.7x at parallelism 2 (2 workers).

Every ratio is against its baseline in the same run; results are checked to be equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, report

import azhpc
import azhpc.usql as usql

DATA = Path(__file__).resolve().parent / ".data"
LAKE = DATA / "usql-lake"
SEARCHLOG = LAKE / "bench" / "searchlog-4m.tsv"
GROUPS = LAKE / "bench" / "groups-1m.tsv"
REGIONS = [
    "en-us",
    "en-gb",
    "en-ca",
    "en-au",
    "en-in",
    "de-de",
    "fr-fr",
    "fr-ca",
    "es-es",
    "es-mx",
    "ja-jp",
    "zh-cn",
    "pt-br",
    "it-it",
    "nl-nl",
    "sv-se",
]
WORDS = [
    "azure",
    "data",
    "lake",
    "weather",
    "news",
    "sports",
    "music",
    "movies",
    "maps",
    "recipes",
    "cars",
    "travel",
    "jobs",
    "health",
    "finance",
    "games",
    "shopping",
    "flights",
    "hotels",
    "football",
    "cricket",
    "python",
    "pandas",
]


def _pool(rng: np.random.Generator, size: int, make) -> np.ndarray:
    return np.array([make(rng) for _ in range(size)], dtype=object)


def generate_searchlog(rows: int = 4_000_000, seed: int = 5) -> None:
    """SearchLog.tsv's columns with realistic distributions, written by DuckDB from Arrow."""
    import pyarrow as pa

    if SEARCHLOG.exists():
        return
    SEARCHLOG.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = np.datetime64("2012-01-01T00:00:00")
    seconds = rng.integers(0, 90 * 86400, rows)
    stamps = pd.to_datetime(base + seconds.astype("timedelta64[s]"))
    # C#'s en-US DateTime text as in SearchLog.tsv: 1/15/2012 11:53:16 AM
    start = (
        stamps.month.astype(str)
        + "/"
        + stamps.day.astype(str)
        + "/"
        + stamps.year.astype(str)
        + " "
        + ((stamps.hour + 11) % 12 + 1).astype(str)
        + stamps.strftime(":%M:%S ")
        + np.where(stamps.hour < 12, "AM", "PM")
    )
    weights = 1 / np.arange(1, len(REGIONS) + 1) ** 1.1
    region = rng.choice(np.array(REGIONS, dtype=object), rows, p=weights / weights.sum())
    queries = _pool(rng, 20_000, lambda r: " ".join(r.choice(WORDS, r.integers(1, 4))))
    query = queries[np.minimum(rng.zipf(1.3, rows), len(queries)) - 1]
    duration = np.round(rng.lognormal(5.0, 1.2, rows)).astype(np.int64)
    missing = rng.random(rows) < 0.02
    urls = _pool(
        rng,
        50_000,
        lambda r: ";".join(
            f"www.{r.choice(WORDS)}.com/{r.integers(1, 10**4)}" for _ in range(r.integers(1, 3))
        ),
    )
    url_ix = rng.integers(0, len(urls), rows)
    clicked = np.where(rng.random(rows) < 0.6, urls[url_ix], "")
    clicked = np.array([u.split(";")[0] if u else u for u in clicked[:50_000]] * (rows // 50_000))
    table = pa.table(
        {
            "UserId": rng.integers(1, 1_000_000, rows),
            "Start": pa.array(np.asarray(start, dtype=object)),
            "Region": pa.array(region),
            "Query": pa.array(query),
            "Duration": pa.array(duration, mask=missing),
            "Urls": pa.array(urls[url_ix]),
            "ClickedUrls": pa.array(clicked),
        }
    )
    con = duckdb.connect()
    con.register("t", table)
    con.execute(
        f"COPY t TO '{SEARCHLOG}' (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '', ESCAPE '')"
    )
    con.close()


def generate_groups(rows: int = 1_000_000, groups: int = 1_000, seed: int = 7) -> None:
    """key (1,000 groups of ~1,000 rows), two measures and a label, as a TSV."""
    if GROUPS.exists():
        return
    GROUPS.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "key": rng.integers(0, groups, rows),
            "x": np.round(rng.normal(100, 15, rows), 4),
            "y": np.round(rng.exponential(3, rows), 4),
            "label": rng.choice(np.array(WORDS, dtype=object), rows),
        }
    )
    frame.to_csv(GROUPS, sep="\t", header=False, index=False)


# --------------------------------------------------------------------------- 1: the query

QUERY = """
@searchlog =
    EXTRACT UserId int, Start DateTime, Region string, Query string,
            Duration int?, Urls string, ClickedUrls string
    FROM "/bench/searchlog-4m.tsv"
    USING Extractors.Tsv();
@long = SELECT Region, Duration FROM @searchlog WHERE Duration >= 100;
@byRegion =
    SELECT Region, COUNT(*) AS Sessions, SUM(Duration) AS TotalDuration
    FROM @long
    GROUP BY Region;
OUTPUT @byRegion TO "/bench/out/by-region.csv"
    ORDER BY TotalDuration DESC
    USING Outputters.Csv();
"""

DUCKDB = """
COPY (
    SELECT Region, COUNT(*) AS Sessions, SUM(Duration) AS TotalDuration
    FROM read_csv('{path}', delim='\t', header=false, quote='', escape='', auto_detect=false,
                  columns={{'UserId': 'INTEGER', 'Start': 'VARCHAR', 'Region': 'VARCHAR',
                           'Query': 'VARCHAR', 'Duration': 'INTEGER', 'Urls': 'VARCHAR',
                           'ClickedUrls': 'VARCHAR'}})
    WHERE Duration >= 100
    GROUP BY Region
    ORDER BY TotalDuration DESC
) TO '{out}' (FORMAT csv, HEADER false)
"""


def bench_query(repeat: int) -> dict[str, float]:
    lake = usql.script_lake(LAKE)
    out = LAKE / "bench" / "out" / "duckdb.csv"

    def run_usql() -> None:
        usql.run(QUERY, lake=lake, name="bench.usql")

    def run_duckdb() -> None:
        con = duckdb.connect()
        con.execute(DUCKDB.format(path=SEARCHLOG, out=out))
        con.close()

    def run_pandas() -> pd.DataFrame:
        names = ["UserId", "Start", "Region", "Query", "Duration", "Urls", "ClickedUrls"]
        frame = pd.read_csv(SEARCHLOG, sep="\t", header=None, names=names, quoting=3)
        frame = frame[frame.Duration >= 100]
        return (
            frame.groupby("Region")
            .agg(Sessions=("UserId", "size"), TotalDuration=("Duration", "sum"))
            .sort_values("TotalDuration", ascending=False)
        )

    run_usql(), run_duckdb()  # warm the page cache and imports
    ours, ours_all = best_of(run_usql, repeat)
    base, base_all = best_of(run_duckdb, repeat)
    pandas_time, _ = best_of(run_pandas, 1)
    a = pd.read_csv(LAKE / "bench" / "out" / "by-region.csv", header=None)
    b = pd.read_csv(out, header=None)
    expected = run_pandas().reset_index()
    assert (a.values == b.values).all(), "U-SQL and DuckDB disagree"
    assert (a.values == expected.values).all(), "U-SQL and pandas disagree"
    print(f"  U-SQL samples {[round(s, 3) for s in ours_all]}")
    print(f"  DuckDB samples {[round(s, 3) for s in base_all]}")
    print(f"  pandas read_csv+groupby (context): {pandas_time:.3f} s")
    report("EXTRACT->WHERE->GROUP BY->ORDER BY->OUTPUT, 4M rows", ours, base, 1.5)
    return {"usql": ours, "duckdb": base, "pandas": pandas_time}


# --------------------------------------------------------------------------- 2: the reducer

REDUCER = """
def usqlml_main(df):
    import numpy as np
    import pandas as pd
    df = df.sort_values('x')
    z = (df.x - df.x.mean()) / (df.x.std() + 1e-9)
    rolling = df.y.rolling(25, min_periods=1).mean()
    top = df.label.value_counts()
    return pd.DataFrame({
        'key': [int(df.key.iloc[0])],
        'n': [len(df)],
        'zmax': [float(z.max())],
        'roll': [float(rolling.iloc[-1])],
        'corr': [float(np.corrcoef(df.x, df.y)[0, 1])],
        'top': [str(top.index[0])],
    })
"""

REDUCE_SCRIPT = (
    'REFERENCE ASSEMBLY [ExtPython];\nDECLARE @s = @"'
    + REDUCER
    + '";\n'
    + """
@t = EXTRACT key int, x double, y double, label string
     FROM "/bench/groups-1m.tsv" USING Extractors.Tsv();
@r = REDUCE @t ON key
     PRODUCE key int, n int, zmax double, roll double, corr double, top string
     USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/bench/out/reduced.csv" ORDER BY key USING Outputters.Csv();
"""
)


def bench_reducer(repeat: int) -> dict[str, float]:
    namespace: dict = {}
    exec(REDUCER, namespace)  # the same function, hand-applied
    fn = namespace["usqlml_main"]
    lake = usql.script_lake(LAKE)
    out = LAKE / "bench" / "out" / "pandas-reduced.csv"

    def run_pandas() -> None:
        frame = pd.read_csv(GROUPS, sep="\t", header=None, names=["key", "x", "y", "label"])
        # grouped by the key's values (not the column name), so that pandas 3 keeps the key
        # column in each group as U-SQL does
        result = frame.groupby(frame["key"].to_numpy(), group_keys=False).apply(fn)
        result.sort_values("key").to_csv(out, header=False, index=False)

    figures = {}
    with azhpc.connect(workers=2, progress=False) as session:
        for parallelism in (1, 2):

            def run_usql(p: int = parallelism) -> None:
                usql.run(REDUCE_SCRIPT, lake=lake, pool=session, parallelism=p, name="r.usql")

            run_usql()
            figures[f"p{parallelism}"], samples = best_of(run_usql, repeat)
            print(f"  U-SQL parallelism={parallelism} samples {[round(s, 3) for s in samples]}")
    run_pandas()
    base, base_all = best_of(run_pandas, repeat)
    print(f"  pandas groupby.apply samples {[round(s, 3) for s in base_all]}")
    ours = pd.read_csv(LAKE / "bench" / "out" / "reduced.csv", header=None)
    theirs = pd.read_csv(out, header=None)
    assert ours[[0, 1]].equals(theirs[[0, 1]]) and np.allclose(ours[[2, 3, 4]], theirs[[2, 3, 4]])
    report("Python reducer, 1,000 groups x 1,000 rows, parallelism 1", figures["p1"], base, 1.2)
    report("Python reducer, 1,000 groups x 1,000 rows, parallelism 2", figures["p2"], base, 0.7)
    figures["pandas"] = base
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["query", "reducer"], default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    generate_searchlog()
    generate_groups()
    size = os.path.getsize(SEARCHLOG) / 1e6
    print(f"data ready in {time.perf_counter() - started:.1f} s; SearchLog {size:.0f} MB")
    if args.only in (None, "query"):
        bench_query(args.repeat)
    if args.only in (None, "reducer"):
        bench_reducer(args.repeat)
    print(f"each figure: median of {args.repeat}, baselines from the same run")


if __name__ == "__main__":
    main()
