"""Fixtures for the U-SQL tests: a temporary lake holding the ADLA sample data."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import azhpc.usql as usql

SAMPLES = Path(__file__).resolve().parents[2] / "azhpc" / "samples" / "usql"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: The SearchLog.tsv schema of the U-SQL tutorials.
SEARCHLOG_COLUMNS = ["UserId", "Start", "Region", "Query", "Duration", "Urls", "ClickedUrls"]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake root with the samples under /Samples/Data (as on an ADLA account)."""
    root = tmp_path / "lake"
    shutil.copytree(SAMPLES, root / "Samples" / "Data")
    return root


@pytest.fixture
def run(lake: Path) -> Callable[..., usql.executor.ExecutionResult]:
    """Run a script against the temporary lake."""

    def runner(script: str, **kwargs):
        return usql.run_local(script, lake_root=lake, **kwargs)

    return runner


@pytest.fixture
def searchlog() -> pd.DataFrame:
    """SearchLog.tsv read independently with pandas (Start parsed, Duration as Int64)."""
    frame = pd.read_csv(
        SAMPLES / "SearchLog.tsv",
        sep="\t",
        header=None,
        names=SEARCHLOG_COLUMNS,
        encoding="utf-8-sig",
        keep_default_na=False,
        dtype=str,
    )
    frame["UserId"] = frame["UserId"].astype(int)
    frame["Duration"] = frame["Duration"].astype(int)
    frame["Start"] = pd.to_datetime(frame["Start"], format="%m/%d/%Y %I:%M:%S %p")
    return frame
