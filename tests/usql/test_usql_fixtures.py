"""Fixture scripts (fixtures/*.usql) against hand-derived expected outputs (*.expected).

An ``.expected`` file lists each output as ``=== /lake/path`` followed by its lines; lines end
with ``\\r\\n`` in the real file (the outputters' default row delimiter).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import azhpc.usql as usql

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.usql"))


def expected_outputs(name: str) -> dict[str, str]:
    outputs: dict[str, list[str]] = {}
    current = None
    for line in (FIXTURES / f"{name}.expected").read_text(encoding="utf-8").splitlines():
        if line.startswith("=== "):
            current = line[4:].strip()
            outputs[current] = []
        else:
            assert current is not None
            outputs[current].append(line + "\r\n")
    return {path: "".join(lines) for path, lines in outputs.items()}


@pytest.mark.parametrize("name", CASES)
def test_fixtures_script_writes_expected_outputs(name: str, tmp_path: Path) -> None:
    script = (FIXTURES / f"{name}.usql").read_text(encoding="utf-8")
    result = usql.run_local(script, lake_root=tmp_path, name=f"{name}.usql")
    expected = expected_outputs(name)
    assert set(result.outputs) == set(expected)
    for path, text in expected.items():
        written = (tmp_path / path.lstrip("/")).read_bytes().decode("utf-8")
        assert written == text, path
