"""U-SQL file sets: ``/logs/{date:yyyy}/{date:MM}/{name}_{*}.csv`` patterns.

A pattern holds literal text, ``{*}`` (any characters within one folder level), ``{col}`` (a
virtual column taking the matched text) and ``{col:fmt}`` (a part of a ``DateTime`` virtual
column; ``fmt`` is one of ``yyyy MM M dd d HH H mm m ss s``). Listing turns the pattern into a
glob for the lake and a regular expression to read the virtual values back.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

__all__ = ["FilePattern", "MatchedFile", "parse_pattern"]

_DATE_PARTS = {
    "yyyy": (r"\d{4}", "year"),
    "MM": (r"\d{2}", "month"),
    "M": (r"\d{1,2}", "month"),
    "dd": (r"\d{2}", "day"),
    "d": (r"\d{1,2}", "day"),
    "HH": (r"\d{2}", "hour"),
    "H": (r"\d{1,2}", "hour"),
    "mm": (r"\d{2}", "minute"),
    "m": (r"\d{1,2}", "minute"),
    "ss": (r"\d{2}", "second"),
    "s": (r"\d{1,2}", "second"),
}
_TOKEN = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class MatchedFile:
    """A file a pattern matched, with the values of its virtual columns."""

    path: str
    values: dict[str, object]


@dataclass(frozen=True)
class FilePattern:
    """A parsed file-set pattern."""

    text: str
    regex: str
    glob: str
    columns: tuple[str, ...]
    date_columns: tuple[str, ...]
    groups: tuple[tuple[str, str], ...]  # (regex group, column or column.part)

    @property
    def is_fileset(self) -> bool:
        return self.glob != self.text

    def match(self, path: str) -> MatchedFile | None:
        """The virtual values ``path`` gives, or ``None`` if it does not match."""
        found = re.fullmatch(self.regex, path)
        if found is None:
            return None
        values: dict[str, object] = {}
        parts: dict[str, dict[str, int]] = {}
        for group, target in self.groups:
            text = found.group(group)
            if "." in target:
                column, part = target.split(".", 1)
                previous = parts.setdefault(column, {}).get(part)
                if previous is not None and previous != int(text):
                    return None  # {date:yyyy} twice with different values
                parts[column][part] = int(text)
            else:
                if target in values and values[target] != text:
                    return None
                values[target] = text
        for column, fields in parts.items():
            try:
                values[column] = _dt.datetime(
                    fields.get("year", 1),
                    fields.get("month", 1),
                    fields.get("day", 1),
                    fields.get("hour", 0),
                    fields.get("minute", 0),
                    fields.get("second", 0),
                )
            except ValueError:
                return None
        return MatchedFile(path, values)


def parse_pattern(text: str) -> FilePattern:
    """Parse a path or file-set pattern.

    Raises
    ------
    ValueError
        For an unknown date format or an empty ``{}``.
    """
    regex: list[str] = []
    glob: list[str] = []
    columns: list[str] = []
    date_columns: list[str] = []
    groups: list[tuple[str, str]] = []
    position = 0
    for k, found in enumerate(_TOKEN.finditer(text)):
        literal = text[position : found.start()]
        regex.append(re.escape(literal))
        glob.append(literal)
        position = found.end()
        inner = found.group(1).strip()
        glob.append("*")
        if inner == "*":
            regex.append(r"[^/]*")
            continue
        if not inner:
            raise ValueError("empty {} in a file set pattern")
        name, _, fmt = inner.partition(":")
        group = f"g{k}"
        if fmt:
            if fmt not in _DATE_PARTS:
                known = ", ".join(_DATE_PARTS)
                raise ValueError(f"unknown date format '{fmt}' in {{{inner}}} (known: {known})")
            pattern, part = _DATE_PARTS[fmt]
            regex.append(f"(?P<{group}>{pattern})")
            groups.append((group, f"{name}.{part}"))
            if name not in date_columns:
                date_columns.append(name)
        else:
            regex.append(f"(?P<{group}>[^/]+?)")
            groups.append((group, name))
        if name not in columns:
            columns.append(name)
    regex.append(re.escape(text[position:]))
    glob.append(text[position:])
    return FilePattern(
        text, "".join(regex), "".join(glob), tuple(columns), tuple(date_columns), tuple(groups)
    )
