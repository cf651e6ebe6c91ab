"""U-SQL errors: :class:`~azhpc.errors.UsqlError` (defined with every other error in
``azhpc/errors.py``, with its ADLA-style :class:`~azhpc.errors.ErrorCode`) and the script
position it points at (:class:`Span`).

Every problem the U-SQL engine reports, at compile time or at run time, is a
:class:`UsqlError`. Its first line reads ``SCRIPT:LINE:COL: CODE: message`` (the form the CLI
prints), followed by the offending source line and a caret under the offending token.

Codes follow ADLA's naming (``E_CSC_USER_...`` for compile errors, ``E_RUNTIME_USER_...`` for run
time errors, ``E_STORE_USER_...`` for the lake). ``E_CSC_USER_SYNTAXERROR`` is ADLA's own code;
the others are named in the same style where ADLA's exact code is not known, and
``E_AZHPC_USQL_NOTSUPPORTED`` marks a construct azhpc does not (yet) run.
"""

from __future__ import annotations

from azhpc.errors import ErrorCode, UsqlError

__all__ = ["ErrorCode", "Span", "UsqlError"]


class Span:
    """Where a token or node is in the script: 1-based line and column, 0-based offset, length."""

    __slots__ = ("column", "length", "line", "offset")

    def __init__(self, line: int, column: int, offset: int, length: int = 1) -> None:
        self.line = line
        self.column = column
        self.offset = offset
        self.length = max(1, length)

    def __repr__(self) -> str:
        return f"Span({self.line}:{self.column})"

    def __eq__(self, other: object) -> bool:  # spans never make two nodes different
        return isinstance(other, Span)

    def __hash__(self) -> int:
        return 0

    def __reduce__(self):
        return (Span, (self.line, self.column, self.offset, self.length))
