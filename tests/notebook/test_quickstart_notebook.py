"""The workshop notebook runs from top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01-quickstart.ipynb"


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return notebook


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


def _cell(notebook: nbformat.NotebookNode, snippet: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and snippet in c.source]
    return cell


def _shown(cell: nbformat.NotebookNode) -> str:
    return "".join(_text(o) for o in cell.outputs)


def test_quickstart_notebook_azrun_results(executed: nbformat.NotebookNode) -> None:
    plain = _shown(_cell(executed, "threshold = 150.0"))
    assert "sales above 150.0" in plain  # printed on the worker, shown here
    assert float(plain.strip().splitlines()[-1]) > 150  # the cell's last expression
    assert _shown(_cell(executed, "big.shape, threshold")).endswith("150.0)")
    assert _shown(_cell(executed, "bootstrap spread")).startswith("mean ")
    assert "map_partitions:" in _shown(_cell(executed, "scored = azhpc.map_partitions"))
    assert "ZeroDivisionError" in _shown(_cell(executed, "except azhpc.TaskError"))
