"""REDUCE with Extension.Python.Reducer: per-group calls, the run_groups hook, failures."""

from __future__ import annotations

import pickle

import cloudpickle
import pandas as pd
import pytest
from usql_helpers import csv_rows, read_output

import azhpc.usql as usql
from azhpc.usql.errors import ErrorCode
from azhpc.usql.reducer import PythonReducer, ReducerFailure

MENTIONS = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @myScript = @"
def get_mentions(tweet):
    return ';'.join( ( w[1:] for w in tweet.split() if w[0]=='@' ) )

def usqlml_main(df):
    del df['time']
    del df['author']
    df['mentions'] = df.tweet.apply(get_mentions)
    del df['tweet']
    return df
";
@t = EXTRACT date string, time string, author string, tweet string
     FROM "/Samples/Data/Tweets/{*}.csv"
     USING Extractors.Csv();
@m = REDUCE @t ON author
     PRODUCE date string, mentions string
     USING new Extension.Python.Reducer(pyScript:@myScript);
@n = SELECT COUNT(*) AS rows, SUM(mentions.Length) AS chars FROM @m;
OUTPUT @n TO "/output/mentions.csv" USING Outputters.Csv();
"""


def test_reducer_tweet_mentions_over_sample_files(run, lake) -> None:
    calls: list[int] = []

    def counting(reducer, frames):
        calls.append(len(frames))
        return [reducer(f) for f in frames]

    run(MENTIONS, run_groups=counting)
    frames = [
        pd.read_csv(
            p,
            header=None,
            names=["date", "time", "author", "tweet"],
            dtype=str,
            keep_default_na=False,
        )
        for p in sorted((lake / "Samples" / "Data" / "Tweets").glob("*.csv"))
    ]
    tweets = pd.concat(frames)
    mentions = tweets.tweet.map(lambda t: ";".join(w[1:] for w in t.split() if w[0] == "@"))
    assert calls == [tweets.author.nunique()]
    assert csv_rows(read_output(lake, "/output/mentions.csv")) == [
        [str(len(tweets)), str(int(mentions.str.len().sum()))]
    ]


def test_reducer_groups_have_fresh_index_and_presort(run, lake) -> None:
    script = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @s = @"
import pandas as pd
def usqlml_main(df):
    assert list(df.index) == list(range(len(df)))
    return pd.DataFrame({'k': [df.k[0]], 'order': [','.join(str(v) for v in df.v)]})
";
@t = SELECT * FROM (VALUES ("a", 3), ("b", 1), ("a", 1), ("a", 2)) AS T(k, v);
@r = REDUCE @t ON k PRESORT v DESC PRODUCE k string, order string
     USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" ORDER BY k USING Outputters.Csv();
"""
    run(script)
    assert read_output(lake, "/o.csv") == '"a","3,2,1"\r\n"b","1"\r\n'


def test_reducer_exception_shows_python_traceback(run, lake) -> None:
    script = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @s = @"
def helper(x):
    return 1 / 0

def usqlml_main(df):
    return helper(df)
";
@t = SELECT * FROM (VALUES ("a", 1)) AS T(k, v);
@r = REDUCE @t ON k PRODUCE k string USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" USING Outputters.Csv();
"""
    with pytest.raises(usql.UsqlError) as info:
        run(script, name="job.usql")
    error = info.value
    assert error.code is ErrorCode.PYTHON_EXCEPTION
    assert "ZeroDivisionError" in error.message
    text = str(error)
    assert 'File "job.usql", line 4, in helper' in text
    assert "return 1 / 0" in text
    assert "line 7, in usqlml_main" in text
    assert (error.line, error.column) == (10, 1)
    assert not (lake / "o.csv").exists()


def test_reducer_produce_mismatch_lists_both_column_sets(run) -> None:
    script = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @s = @"
def usqlml_main(df):
    df['extra'] = 1
    return df
";
@t = SELECT * FROM (VALUES ("a", 1)) AS T(k, v);
@r = REDUCE @t ON k PRODUCE k string, total int USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" USING Outputters.Csv();
"""
    with pytest.raises(usql.UsqlError) as info:
        run(script)
    assert info.value.code is ErrorCode.PRODUCE_MISMATCH
    assert "[k, v, extra]" in info.value.message and "[k, total]" in info.value.message


def test_reducer_needs_reference_assembly() -> None:
    script = """DECLARE @s = "def usqlml_main(df): return df";
@t = SELECT * FROM (VALUES ("a")) AS T(k);
@r = REDUCE @t ON k PRODUCE k string USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" USING Outputters.Csv();"""
    with pytest.raises(usql.UsqlError) as info:
        usql.compile(script)
    assert "REFERENCE ASSEMBLY [ExtPython]" in info.value.message


def test_reducer_callable_pickles_and_runs_elsewhere() -> None:
    reducer = PythonReducer("def usqlml_main(df):\n    return df[['k']]\n", "<pyScript>", 0, ("k",))
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        clone = loads(dumps(reducer))
        out = clone(pd.DataFrame({"k": ["x"], "v": [1]}))
        assert out.to_dict("list") == {"k": ["x"]}
    failure = ReducerFailure("exception", "ValueError: x", "Traceback ...")
    assert pickle.loads(pickle.dumps(failure)).traceback_text == "Traceback ..."


def test_reducer_all_makes_one_group(run, lake) -> None:
    script = """REFERENCE ASSEMBLY [ExtPython];
DECLARE @s = @"
import pandas as pd
def usqlml_main(df):
    return pd.DataFrame({'n': [len(df)], 'total': [float(df.v.sum())]})
";
@t = SELECT * FROM (VALUES ("a", 1), ("b", 2), ("c", 4)) AS T(k, v);
@r = REDUCE @t ALL PRODUCE n int, total double USING new Extension.Python.Reducer(pyScript:@s);
OUTPUT @r TO "/o.csv" USING Outputters.Csv();
"""
    run(script)
    assert read_output(lake, "/o.csv") == "3,7\r\n"
