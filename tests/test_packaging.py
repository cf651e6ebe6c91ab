"""The project's own files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra if not r.startswith("azhpc")}
    listed = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        line = line.strip()
        if line.startswith("- ") and not line.startswith("- -e") and ":" not in line:
            listed.add(_name(line[2:]))
    listed -= {"python", "pip", "openmpi"}  # openmpi: the system MPI (apt in ./dev)
    assert listed == wanted


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in readme and "./dev quickstart" in readme
    assert "./dev test" in ci


def test_the_newcomers_path_leads_from_the_quickstart_to_the_notebooks_in_jupyterlab():
    """Two set-up commands, then one to open the workshop (issue 14, items 1 and 10)."""
    import io
    import tomllib

    from azhpc.quickstart import run

    readme = (ROOT / "README.md").read_text()
    assert "./dev lab" in readme and "01-quickstart" in readme
    dev = (ROOT / "dev").read_text()
    lab = dev.split("    lab)\n", 1)[1].split(";;", 1)[0]
    assert 'ensure_env "[workshop]"' in lab and 'jupyter" lab' in lab and "notebooks" in lab
    assert "127.0.0.1" in lab and "--allow-root" in lab  # this machine only; root in containers
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(r.startswith("jupyterlab") for r in extras["notebook"])
    assert "notebook" in extras["workshop"][0] and "azure" in extras["workshop"][0]
    out = io.StringIO()
    assert run(workers=1, rows=10_000, out=out) == 0
    assert (
        out.getvalue()
        .rstrip()
        .splitlines()[-1]
        .endswith("open them in JupyterLab with `./dev lab`")
    )
