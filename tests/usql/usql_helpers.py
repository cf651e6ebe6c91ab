"""Helpers shared by the U-SQL tests."""

from __future__ import annotations

from pathlib import Path


def read_output(lake: Path, path: str) -> str:
    """The text of an output file, with its row delimiters untouched."""
    return (lake / path.lstrip("/")).read_bytes().decode("utf-8")


def csv_rows(text: str, sep: str = ",") -> list[list[str]]:
    """Split outputter text into rows of raw (still quoted) fields."""
    assert text == "" or text.endswith("\r\n")
    return [line.split(sep) for line in text.split("\r\n")[:-1]]
