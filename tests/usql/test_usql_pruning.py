"""File-set elimination: predicates on virtual columns keep files from being read at all."""

from __future__ import annotations

from pathlib import Path

import pytest

import azhpc.usql as usql
from azhpc.lake import RootedFileSystem
from azhpc.usql import ErrorCode

EXTRACT = """@r = EXTRACT x int, y int, date DateTime, name string
    FROM "/logs/{date:yyyy}/{date:MM}/{date:dd}/{name}.csv" USING Extractors.Csv();
"""


class CountingLake(RootedFileSystem):
    """A local lake that records every file opened for reading."""

    cachable = False  # each instance counts its own reads

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened: list[str] = []

    def local_path(self, path: str) -> str | None:
        self.opened.append(path)
        return super().local_path(path)

    def open(self, path: str, mode: str = "rb", **kwargs):
        if "r" in mode:
            self.opened.append(path)
        return super().open(path, mode, **kwargs)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    files = {
        "logs/2024/01/01/a.csv": "not-a-number,1\n",  # fails extraction if ever read
        "logs/2024/01/02/a.csv": "1,2\n3,4\n",
        "logs/2024/01/03/b.csv": "5,6\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def _run(logs: Path, where: str) -> tuple[CountingLake, str]:
    lake = CountingLake(logs)
    script = EXTRACT + (
        f"@s = SELECT x, y, name FROM @r WHERE {where};\n"
        'OUTPUT @s TO "/o.csv" ORDER BY x USING Outputters.Csv();\n'
    )
    usql.run(script, lake=lake)
    return lake, (logs / "o.csv").read_bytes().decode()


def test_the_corrupt_file_fails_when_it_is_read(logs: Path) -> None:
    with pytest.raises(usql.UsqlError) as info:
        _run(logs, "x > 0")
    assert info.value.code is ErrorCode.CONVERSION
    assert info.value.file == "/logs/2024/01/01/a.csv"


def test_date_predicate_eliminates_files_before_reading(logs: Path) -> None:
    lake, text = _run(logs, 'date >= DateTime.Parse("2024-01-02") && x > 0')
    assert text == '1,2,"a"\r\n3,4,"a"\r\n5,6,"b"\r\n'
    assert "/logs/2024/01/01/a.csv" not in lake.opened
    assert sorted(set(lake.opened)) == ["/logs/2024/01/02/a.csv", "/logs/2024/01/03/b.csv"]


def test_name_predicate_reads_one_file(logs: Path) -> None:
    lake, text = _run(logs, 'name == "b"')
    assert text == '5,6,"b"\r\n'
    assert set(lake.opened) == {"/logs/2024/01/03/b.csv"}


def test_a_reader_without_the_predicate_keeps_every_file(logs: Path) -> None:
    script = EXTRACT + (
        '@s = SELECT x FROM @r WHERE name == "b";\n'
        "@t = SELECT x FROM @r;\n"
        'OUTPUT @s TO "/s.csv" USING Outputters.Csv();\n'
        'OUTPUT @t TO "/t.csv" USING Outputters.Csv();\n'
    )
    with pytest.raises(usql.UsqlError, match="not-a-number"):
        usql.run(script, lake=CountingLake(logs))
    plan = usql.compile(script).plan
    assert [s.file_filter for s in plan.steps if s.kind.value == "extract"] == [None]


def test_two_readers_read_the_union_of_their_files(logs: Path) -> None:
    script = EXTRACT + (
        '@s = SELECT x FROM @r WHERE name == "b";\n'
        '@t = SELECT x FROM @r WHERE date == DateTime.Parse("2024-01-02");\n'
        'OUTPUT @s TO "/s.csv" USING Outputters.Csv();\n'
        'OUTPUT @t TO "/t.csv" ORDER BY x USING Outputters.Csv();\n'
    )
    lake = CountingLake(logs)
    job = usql.run(script, lake=lake)
    assert job.outputs == {"/s.csv": 1, "/t.csv": 2}
    assert "/logs/2024/01/01/a.csv" not in lake.opened
