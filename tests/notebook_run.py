"""Running the workshop notebooks in a real Jupyter kernel, and reading what they showed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, *, timeout: int = 120, env: Mapping[str, str] | None = None):
    """Execute ``notebooks/<name>`` top to bottom with a ``python3`` kernel; return it."""
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
    )
    if env is None:
        client.execute()
    else:
        client.execute(env=dict(env))
    return notebook


def output_text(output: Mapping) -> str:
    """The text of one output: a stream, an error's traceback, or every data representation."""
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    return "".join(str(v) for v in output.get("data", {}).values())


def shown(cell) -> str:
    """Everything a code cell showed."""
    return "".join(output_text(o) for o in cell.outputs)


def cell(notebook, snippet: str):
    """The one code cell whose source contains ``snippet``."""
    (found,) = [c for c in notebook.cells if c.cell_type == "code" and snippet in c.source]
    return found


def profile_env(profile: str, home: Path) -> dict[str, str]:
    """This process's environment without any azhpc setting, on ``profile``, with no config
    file and a lake folder under ``home``: what a notebook's kernel gets in the tests."""
    from azhpc.config import ENVIRONMENT

    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT.values()}
    env.update(
        AZHPC_PROFILE=profile,
        AZHPC_LAKE_ROOT=str(home / "lake"),  # local: never the user's ~/.azhpc/lake
        AZHPC_CONFIG=str(home / "no-config.toml"),
    )
    return env


def errors(notebook) -> list[str]:
    """Each code cell that raised: its source and what it showed."""
    return [
        f"{code.source}\n{shown(code)}"
        for code in notebook.cells
        if code.cell_type == "code" and any(o.output_type == "error" for o in code.outputs)
    ]
