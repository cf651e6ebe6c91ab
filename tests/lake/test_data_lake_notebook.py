"""The Data Lake workshop notebook runs from top to bottom in a real Jupyter kernel, unchanged,
on the ``local`` and the ``emulated`` profile (chosen through ``AZHPC_PROFILE``)."""

from __future__ import annotations

import os

import nbformat
import pytest

from azhpc.emulator.azurite import _DEV_ACCOUNT_KEY
from tests.notebook_run import cell as _cell
from tests.notebook_run import execute, profile_env
from tests.notebook_run import shown as _shown

from .conftest import azurite_installed


@pytest.fixture(scope="module", params=["local", "emulated"])
def executed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, nbformat.NotebookNode]:
    """The notebook executed by a ``python3`` kernel whose environment picks the profile."""
    profile = request.param
    if profile == "emulated" and not azurite_installed() and not os.environ.get("CI"):
        pytest.skip("Azurite is not installed (run `npm ci` or ./dev test)")
    home = tmp_path_factory.mktemp(f"notebook-{profile}")
    return profile, execute("02-data-lake.ipynb", env=profile_env(profile, home))


def test_runs_without_errors(executed: tuple[str, nbformat.NotebookNode]) -> None:
    _, notebook = executed
    for cell in notebook.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors == [], f"{cell.source}\n{_shown(cell)}"


def test_connects_to_the_profile_of_the_environment(
    executed: tuple[str, nbformat.NotebookNode],
) -> None:
    profile, notebook = executed
    shown = _shown(_cell(notebook, "session = azhpc.connect(PROFILE"))
    assert f"profile: {profile}" in shown
    url = _shown(_cell(notebook, 'print(azhpc.lake.url("/workshop/raw/sales.parquet"))'))
    if profile == "emulated":
        assert "abfs://azhpc/workshop/raw/sales.parquet" in url
        assert "StorageOptions({'connection_string': '***'})" in url
    else:
        assert url.splitlines()[0].endswith("/lake/workshop/raw/sales.parquet")
        assert "StorageOptions({})" in url


def test_round_trips_listing_and_transfers(executed: tuple[str, nbformat.NotebookNode]) -> None:
    _, notebook = executed
    read = _shown(_cell(notebook, "from_csv = pd.read_csv"))
    assert "read back 200,000 rows from CSV and 200,000 from Parquet" in read
    listed = _shown(_cell(notebook, 'azhpc.lake.ls("/workshop/raw")'))
    assert "['/workshop/raw/sales.csv', '/workshop/raw/sales.parquet']" in listed
    assert "put: 1 file, 24 MiB" in _shown(_cell(notebook, "sent = azhpc.lake.put"))
    got = _shown(_cell(notebook, "got = azhpc.lake.get"))
    assert "get: 1 file, 24 MiB" in got and "identical: True" in got


def test_scattered_tasks_read_and_write_the_lake(
    executed: tuple[str, nbformat.NotebookNode],
) -> None:
    _, notebook = executed
    ran = _shown(_cell(notebook, "rows = azhpc.map("))
    assert "total 200,000" in ran
    assert "'/workshop/summary/west.parquet'" in _shown(
        _cell(notebook, 'azhpc.lake.ls("/workshop/summary")')
    )
    checked = _shown(_cell(notebook, "summary = pd.read_parquet"))
    assert "summary of 200,000 sales in 160 (region, store) pairs matches" in checked


def test_closes_the_session_and_its_azurite(executed: tuple[str, nbformat.NotebookNode]) -> None:
    profile, notebook = executed
    shown = _shown(_cell(notebook, "session.close()"))
    assert "(closed)>" in shown
    if profile == "emulated":
        assert "<azhpc.emulator.Azurite stopped>" in shown


def test_shows_no_secret(executed: tuple[str, nbformat.NotebookNode]) -> None:
    _, notebook = executed
    everything = "".join(_shown(c) for c in notebook.cells if c.cell_type == "code")
    assert _DEV_ACCOUNT_KEY not in everything
    assert "AccountKey=" not in everything
