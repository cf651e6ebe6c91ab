"""The U-SQL workshop notebook runs from top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import nbformat
import pytest

from tests.notebook_run import cell as _cell
from tests.notebook_run import execute
from tests.notebook_run import shown as _shown


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    return execute("04-usql-python.ipynb", timeout=60)


def test_usql_notebook_runs_without_unexpected_errors(executed) -> None:
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if "raises-exception" in cell.metadata.get("tags", []):
            assert len(errors) == 1, cell.source
        else:
            assert errors == [], f"{cell.source}\n{errors}"


def test_usql_notebook_error_cell_shows_position_and_caret(executed) -> None:
    (cell,) = [c for c in executed.cells if "raises-exception" in c.metadata.get("tags", [])]
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    text = "\n".join(error.traceback)
    assert error.ename == "UsqlError"
    assert "typo.usql:5:22: E_CSC_USER_SYNTAXERROR" in text
    assert "^^^^" in text and "azhpc/" not in text


def test_usql_notebook_results(executed) -> None:
    assert "Ended/Succeeded" in _shown(_cell(executed, 'TO "/output/SearchLog-first-u-sql.csv"'))
    assert "en-gb" in _shown(_cell(executed, "%%usql --show @rs1"))
    assert "NumSessions" in _shown(_cell(executed, "%%usql --show @top"))
    shown = _shown(_cell(executed, "job = usql.run(mentions_script"))
    assert "Succeeded" in shown and "/output/tweetmentions.csv" in shown
    assert "reduce" in _shown(_cell(executed, "job.stages"))
    assert "ZeroDivisionError" in _shown(_cell(executed, "broken ="))
