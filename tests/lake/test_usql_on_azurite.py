"""U-SQL through a lake's rooted filesystem on Azurite: the same lake paths as locally."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import azhpc.usql as usql
from azhpc.config import resolve_settings
from azhpc.lake import Lake

from .conftest import fresh_container

SCRIPT = """@t = EXTRACT date string, time string, author string, tweet string, file string
    FROM "/Samples/Data/Tweets/{file}Tweets.csv" USING Extractors.Csv();
@r = SELECT file, COUNT(*) AS n FROM @t GROUP BY file;
OUTPUT @r TO "/output/counts.csv" ORDER BY file USING Outputters.Csv();
"""


@pytest.fixture
def lake(azurite) -> Iterator[Lake]:
    lake = Lake(resolve_settings("emulated", container=fresh_container()), emulator=azurite)
    lake.ensure_container()
    yield lake
    lake.close()


def test_usql_runs_on_the_rooted_filesystem_of_an_azurite_lake(lake: Lake, tmp_path) -> None:
    written = usql.install_samples(lake)
    assert "/Samples/Data/SearchLog.tsv" in written
    assert lake.exists("/Samples/Data/Tweets/saveenrTweets.csv")

    local = tmp_path / "local"  # the same script on a local folder holding the same files
    usql.install_samples(local)
    expected = usql.run(SCRIPT, lake=local).outputs

    job = usql.run(SCRIPT, lake=lake)
    assert job.outputs == expected and expected["/output/counts.csv"] > 1
    with lake.open("/output/counts.csv", "rb") as f:
        assert f.read() == (local / "output" / "counts.csv").read_bytes()
    assert lake.ls("/output") == ["/output/counts.csv"]  # no temporary file left behind

    # Outputs replace what is there, through the filesystem given as lake=.
    again = usql.run(SCRIPT, lake=lake.filesystem())
    assert again.outputs == expected
    assert lake.ls("/output") == ["/output/counts.csv"]


def test_usql_on_azurite_names_a_missing_file_by_its_lake_path(lake: Lake) -> None:
    lake.filesystem().pipe_file("/Samples/Data/folder.csv/inner.txt", b"1")  # a folder, not a file
    for missing in ("/Samples/Data/none.csv", "/Samples/Data/folder.csv"):
        script = (
            f'@r = EXTRACT a string FROM "{missing}" USING Extractors.Csv();\n'
            'OUTPUT @r TO "/o.csv" USING Outputters.Csv();\n'
        )
        job = usql.submit(script, lake=lake).wait(timeout=60)
        (error,) = job.errors
        assert missing in error.message
    assert not lake.exists("/o.csv")
