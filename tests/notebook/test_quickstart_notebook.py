"""The workshop notebook runs from top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import nbformat
import pytest

from tests.notebook_run import cell as _cell
from tests.notebook_run import execute
from tests.notebook_run import shown as _shown


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    return execute("01-quickstart.ipynb")


def test_quickstart_notebook_runs_without_errors(executed: nbformat.NotebookNode) -> None:
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            assert len(errors) == 1, cell.source
        else:
            assert errors == [], f"{cell.source}\n{errors}"


def test_quickstart_notebook_shows_remote_traceback(executed: nbformat.NotebookNode) -> None:
    (cell,) = [c for c in executed.cells if "raises-exception" in c.metadata.get("tags", [])]
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    traceback = "\n".join(error.traceback)
    assert error.ename == "TaskError"
    assert "ZeroDivisionError" in traceback
    assert "return part / whole" in traceback and ", line 3, in share" in traceback
    assert "azhpc/" not in traceback


def test_quickstart_notebook_azrun_results(executed: nbformat.NotebookNode) -> None:
    plain = _shown(_cell(executed, "threshold = 150.0"))
    assert "sales above 150.0" in plain  # printed on the worker, shown here
    assert float(plain.strip().splitlines()[-1]) > 150  # the cell's last expression
    assert _shown(_cell(executed, "big.shape, threshold")).endswith("150.0)")
    assert _shown(_cell(executed, "bootstrap spread")).startswith("mean ")
    assert "map_partitions:" in _shown(_cell(executed, "scored = azhpc.map_partitions"))
    assert "ZeroDivisionError" in _shown(_cell(executed, "except azhpc.TaskError"))
