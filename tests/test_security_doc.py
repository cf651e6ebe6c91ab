"""docs/security.md backs each claim with a test: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    named: list[tuple[str, str]] = []
    current = None
    for match in re.finditer(r"(tests/[\w/]+\.py)?::(\w+)", text):
        current = match.group(1) or current
        assert current is not None, f"{match.group(0)} names no file"
        named.append((current, match.group(2)))
    assert len(named) >= 15
    for file, name in named:
        source = (ROOT / file).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{file}::{name} does not exist"
