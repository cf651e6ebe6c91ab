"""The SearchLog walkthrough of the U-SQL tutorials, checked against pandas on the same file."""

from __future__ import annotations

import pandas as pd
from usql_helpers import csv_rows, read_output

EXTRACT = """
@searchlog =
    EXTRACT UserId          int,
            Start           DateTime,
            Region          string,
            Query           string,
            Duration        int?,
            Urls            string,
            ClickedUrls     string
    FROM "/Samples/Data/SearchLog.tsv"
    USING Extractors.Tsv();
"""


def q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def o(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def test_searchlog_extract_output_roundtrips_every_row(run, lake, searchlog) -> None:
    run(EXTRACT + 'OUTPUT @searchlog TO "/output/SearchLog_output.tsv" USING Outputters.Tsv();')
    rows = csv_rows(read_output(lake, "/output/SearchLog_output.tsv"), "\t")
    expected = [
        [
            str(r.UserId),
            o(r.Start),
            q(r.Region),
            q(r.Query),
            str(r.Duration),
            q(r.Urls),
            q(r.ClickedUrls),
        ]
        for r in searchlog.itertuples()
    ]
    assert rows == expected


def test_searchlog_where_filters_like_csharp(run, lake, searchlog) -> None:
    script = (
        EXTRACT
        + """
@rs1 = SELECT Start, Region, Duration FROM @searchlog
       WHERE Region == "en-gb" || (Duration > 600 && Start >= DateTime.Parse("2012/02/16"));
OUTPUT @rs1 TO "/output/filtered.csv" ORDER BY Start, Region USING Outputters.Csv();
"""
    )
    run(script)
    keep = (searchlog.Region == "en-gb") | (
        (searchlog.Duration > 600) & (searchlog.Start >= pd.Timestamp("2012-02-16"))
    )
    frame = searchlog[keep].sort_values(["Start", "Region"])
    expected = [[o(r.Start), q(r.Region), str(r.Duration)] for r in frame.itertuples()]
    assert csv_rows(read_output(lake, "/output/filtered.csv")) == expected
    assert len(expected) > 2


def test_searchlog_group_by_aggregates(run, lake, searchlog) -> None:
    script = (
        EXTRACT
        + """
@rs1 = SELECT Region, COUNT(*) AS NumSessions, SUM(Duration) AS TotalDuration,
              MIN(Duration) AS MinDuration, MAX(Start) AS LastStart
       FROM @searchlog
       GROUP BY Region;
OUTPUT @rs1 TO "/output/agg.csv" ORDER BY TotalDuration DESC
    USING Outputters.Csv(outputHeader: true);
"""
    )
    run(script)
    grouped = (
        searchlog.groupby("Region")
        .agg(
            NumSessions=("UserId", "size"),
            TotalDuration=("Duration", "sum"),
            MinDuration=("Duration", "min"),
            LastStart=("Start", "max"),
        )
        .sort_values("TotalDuration", ascending=False)
    )
    rows = csv_rows(read_output(lake, "/output/agg.csv"))
    assert rows[0] == [
        '"Region"',
        '"NumSessions"',
        '"TotalDuration"',
        '"MinDuration"',
        '"LastStart"',
    ]
    expected = [
        [q(region), str(r.NumSessions), str(r.TotalDuration), str(r.MinDuration), o(r.LastStart)]
        for region, r in grouped.iterrows()
    ]
    assert rows[1:] == expected


def test_searchlog_order_by_fetch(run, lake, searchlog) -> None:
    script = (
        EXTRACT
        + """
@top = SELECT UserId, Duration FROM @searchlog ORDER BY Duration DESC FETCH 5 ROWS;
OUTPUT @top TO "/output/top.csv" ORDER BY Duration DESC USING Outputters.Csv();
"""
    )
    run(script)
    top = searchlog.sort_values("Duration", ascending=False).head(5)
    expected = [[str(r.UserId), str(r.Duration)] for r in top.itertuples()]
    assert csv_rows(read_output(lake, "/output/top.csv")) == expected


def test_searchlog_join_with_values(run, lake, searchlog) -> None:
    script = (
        EXTRACT
        + """
@regions = SELECT * FROM (VALUES ("en-us", "United States"), ("en-gb", "Great Britain"))
           AS R(Region, Name);
@joined = SELECT s.UserId, r.Name, s.Duration
          FROM @searchlog AS s JOIN @regions AS r ON s.Region == r.Region;
@total = SELECT Name, SUM(Duration) AS Total FROM @joined GROUP BY Name;
OUTPUT @total TO "/output/joined.csv" ORDER BY Name USING Outputters.Csv();
"""
    )
    run(script)
    names = pd.DataFrame({"Region": ["en-us", "en-gb"], "Name": ["United States", "Great Britain"]})
    merged = searchlog.merge(names, on="Region").groupby("Name")["Duration"].sum().sort_index()
    expected = [[q(name), str(total)] for name, total in merged.items()]
    assert csv_rows(read_output(lake, "/output/joined.csv")) == expected


def test_searchlog_params_override_external_declare(run, lake) -> None:
    script = (
        """
DECLARE EXTERNAL @region string = "en-us";
DECLARE @out = "/output/" + @region + ".csv";
"""
        + EXTRACT
        + """
@r = SELECT UserId FROM @searchlog WHERE Region == @region;
OUTPUT @r TO @out USING Outputters.Csv();
"""
    )
    result = run(script, params={"region": "en-gb"})
    assert result.outputs == {"/output/en-gb.csv": 2}


def test_searchlog_unused_rowsets_are_not_computed(run, lake) -> None:
    script = (
        EXTRACT
        + """
@unused = SELECT UserId / 0 AS boom FROM @searchlog;
@r = SELECT COUNT(*) AS n FROM @searchlog;
OUTPUT @r TO "/output/n.csv" USING Outputters.Csv();
"""
    )
    result = run(script)
    assert read_output(lake, "/output/n.csv") == "23\r\n"
    assert [s.label for s in result.stages] == ["@searchlog", "@r", "OUTPUT /output/n.csv"]


def test_searchlog_fileset_virtual_column_and_csv_quoting(run, lake) -> None:
    script = """
@tweets = EXTRACT date string, time string, author string, tweet string, file string
          FROM "/Samples/Data/Tweets/{file}Tweets.csv"
          USING Extractors.Csv();
@counts = SELECT file, COUNT(*) AS n FROM @tweets GROUP BY file;
OUTPUT @counts TO "/output/counts.csv" ORDER BY file USING Outputters.Csv();
"""
    run(script)
    folder = lake / "Samples" / "Data" / "Tweets"
    expected = []
    for path in sorted(folder.glob("*Tweets.csv")):
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
        expected.append([q(path.name.removesuffix("Tweets.csv")), str(len(frame))])
    assert csv_rows(read_output(lake, "/output/counts.csv")) == expected


def test_searchlog_keep_exposes_rowset_as_dataframe(lake, searchlog) -> None:
    import azhpc.usql as usql

    script = EXTRACT + "@r = SELECT Region, Duration FROM @searchlog WHERE Duration > 1000;"
    result = usql.run_local(script, lake_root=lake, keep=["@r"])
    try:
        frame = result.rowset("@r")
    finally:
        pass
    expected = searchlog[searchlog.Duration > 1000][["Region", "Duration"]]
    assert sorted(map(tuple, frame.values.tolist())) == sorted(map(tuple, expected.values.tolist()))
    result.close()
