"""The layer contract (pyproject.toml, ``[tool.importlinter]``): it holds, it covers every
module, and it fails on an import from a lower layer into a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))

#: Package __init__ files that are façades, not layers: each re-exports from its own
#: descendants or resolves names on first use; what they may import is checked below.
FACADES = {
    "azhpc": set(),
    "azhpc.lake": {"azhpc.session"},
    "azhpc.backends": set(),
    "azhpc.backends.batch": set(),
}


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return [
        [part.strip() for part in layer.replace("|", ":").split(":")]
        for layer in contract["layers"]
    ]


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    found = [
        index
        for index, members in enumerate(layers)
        for member in members
        if module == member or module.startswith(member + ".")
    ]
    assert len(found) <= 1, f"{module} is in several layers"
    return found[0] if found else None


def test_layers_every_module_is_placed_in_one_layer() -> None:
    layers = _layers()
    graph = grimp.build_graph("azhpc")
    unplaced = sorted(m for m in graph.modules if _layer_of(m, layers) is None and m not in FACADES)
    assert unplaced == [], f"add these modules to a layer in pyproject.toml: {unplaced}"


def test_layers_facades_import_only_their_descendants_and_what_they_front() -> None:
    graph = grimp.build_graph("azhpc", exclude_type_checking_imports=True)
    for facade, allowed in FACADES.items():
        imported = graph.find_modules_directly_imported_by(facade)
        if facade == "azhpc":
            # The root resolves its public names on first use; at import it loads only these.
            assert imported <= {
                "azhpc.errors",
                "azhpc.version",
                "azhpc.notebook",
                "azhpc.joblib_backend",
            }, imported
            continue
        outside = {m for m in imported if not m.startswith(facade + ".") and m not in allowed} - {
            "azhpc.errors",
            "azhpc.version",
        }
        assert outside == set(), f"{facade} imports {outside}"


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed (azhpc[dev])")
def test_layers_contract_holds() -> None:
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed (azhpc[dev])")
def test_layers_contract_fails_on_an_upward_import(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(ROOT / "azhpc", copy / "azhpc", ignore=shutil.ignore_patterns("__pycache__"))
    # core is near the bottom; a function-level import of the session layer breaks the contract.
    (copy / "azhpc" / "core" / "violation.py").write_text(
        "def sneaky():\n"
        "    from azhpc.session import current_session\n\n"
        "    return current_session\n"
    )
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(copy)},
    )
    assert done.returncode != 0
    assert "azhpc.core.violation -> azhpc.session" in done.stdout, done.stdout
