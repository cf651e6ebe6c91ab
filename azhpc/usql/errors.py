"""U-SQL errors: one class, ADLA-style codes, a position and the source line with a caret.

Every problem the U-SQL engine reports, at compile time or at run time, is a
:class:`UsqlError`. Its first line reads ``SCRIPT:LINE:COL: CODE: message`` (the form the CLI
prints), followed by the offending source line and a caret under the offending token.

Codes follow ADLA's naming (``E_CSC_USER_...`` for compile errors, ``E_RUNTIME_USER_...`` for run
time errors, ``E_STORE_USER_...`` for the lake). ``E_CSC_USER_SYNTAXERROR`` is ADLA's own code;
the others are named in the same style where ADLA's exact code is not known, and
``E_AZHPC_USQL_NOTSUPPORTED`` marks a construct azhpc does not (yet) run.
"""

from __future__ import annotations

import enum

from azhpc.errors import AzhpcError

__all__ = ["ErrorCode", "Span", "UsqlError"]


class ErrorCode(enum.StrEnum):
    """The codes a :class:`UsqlError` carries."""

    SYNTAX = "E_CSC_USER_SYNTAXERROR"
    NOT_SUPPORTED = "E_AZHPC_USQL_NOTSUPPORTED"
    UNKNOWN_ROWSET = "E_CSC_USER_INVALIDROWSETNAME"
    UNKNOWN_COLUMN = "E_CSC_USER_INVALIDCOLUMNREFERENCE"
    AMBIGUOUS_COLUMN = "E_CSC_USER_AMBIGUOUSCOLUMNREFERENCE"
    UNKNOWN_VARIABLE = "E_CSC_USER_VARIABLENOTDECLARED"
    VARIABLE_REDECLARED = "E_CSC_USER_VARIABLEALREADYDECLARED"
    UNKNOWN_TYPE = "E_CSC_USER_INVALIDTYPE"
    TYPE_MISMATCH = "E_CSC_USER_TYPEMISMATCH"
    UNKNOWN_MEMBER = "E_CSC_USER_INVALIDMEMBER"
    DUPLICATE_COLUMN = "E_CSC_USER_DUPLICATECOLUMNNAME"
    COLUMN_NAME_MISSING = "E_CSC_USER_COLUMNNAMEREQUIRED"
    NOT_GROUPED = "E_CSC_USER_COLUMNNOTINGROUPBY"
    AGGREGATE_MISPLACED = "E_CSC_USER_AGGREGATENOTALLOWED"
    ORDER_BY_WITHOUT_FETCH = "E_CSC_USER_ORDERBYREQUIRESFETCH"
    SCHEMA_MISMATCH = "E_CSC_USER_SCHEMAMISMATCH"
    INVALID_UDO_ARGUMENT = "E_CSC_USER_INVALIDUDOARGUMENT"
    INVALID_FILESET = "E_CSC_USER_INVALIDFILESETPATTERN"
    INVALID_PARAMETER = "E_CSC_USER_INVALIDPARAMETERVALUE"
    NOT_CONSTANT = "E_CSC_USER_EXPRESSIONNOTCONSTANT"
    FILE_NOT_FOUND = "E_STORE_USER_FILENOTFOUND"
    CONVERSION = "E_RUNTIME_USER_EXTRACT_COLUMN_CONVERSION_INVALID_ERROR"
    COLUMN_COUNT = "E_RUNTIME_USER_EXTRACT_UNEXPECTED_NUMBER_OF_COLUMNS"
    EXPRESSION = "E_RUNTIME_USER_EXPRESSION_EXCEPTION"
    PYTHON_EXCEPTION = "E_RUNTIME_USER_PYTHON_EXCEPTION"
    PRODUCE_MISMATCH = "E_RUNTIME_USER_PYTHON_PRODUCE_MISMATCH"
    OUTPUT = "E_RUNTIME_USER_OUTPUT_ERROR"
    INTERNAL = "E_AZHPC_USQL_INTERNAL"
    CANCELLED = "E_AZHPC_USQL_CANCELLED"


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


class UsqlError(AzhpcError):
    """A U-SQL compile or run time error with an ADLA-style code and a script position.

    Attributes
    ----------
    code : ErrorCode
        What kind of error this is.
    message : str
        The explanation, without position.
    script : str
        The script's name (``script.usql`` unless the caller named it).
    line, column : int
        1-based position of the offending token; 0 when unknown.
    source_line : str
        The script line at ``line`` (empty when unknown).
    length : int
        How many characters the caret underlines.
    file, row : str, int
        For run time errors while reading input: the lake path and 1-based row.
    details : str
        Extra text shown after the caret (for example a Python traceback).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        script: str = "script.usql",
        span: Span | None = None,
        source: str = "",
        file: str = "",
        row: int = 0,
        details: str = "",
    ) -> None:
        self.code = ErrorCode(code)
        self.message = message
        self.script = script
        self.line = span.line if span else 0
        self.column = span.column if span else 0
        self.length = span.length if span else 1
        self.source_line = _line_of(source, self.line) if source and span else ""
        self.file = file
        self.row = row
        self.details = details
        super().__init__(self.headline)

    @property
    def headline(self) -> str:
        """The first line: ``SCRIPT:LINE:COL: CODE: message``."""
        return f"{self.script}:{self.line}:{self.column}: {self.code.value}: {self.message}"

    @property
    def caret(self) -> str:
        """Spaces and carets that sit under the offending token in :attr:`source_line`."""
        if not self.source_line or not self.column:
            return ""
        prefix = "".join("\t" if ch == "\t" else " " for ch in self.source_line[: self.column - 1])
        width = max(1, min(self.length, len(self.source_line) - self.column + 1))
        return prefix + "^" * width

    def __str__(self) -> str:
        lines = [self.headline]
        if self.source_line:
            lines += [self.source_line, self.caret]
        if self.details:
            lines += ["", self.details.rstrip()]
        return "\n".join(lines)

    def __reduce__(self):
        return (_rebuild, (type(self), self.__dict__.copy()))

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the script position, not the engine's internals."""
        red, reset = "\x1b[0;31m", "\x1b[0m"
        first, *rest = str(self).splitlines()
        return [f"{red}UsqlError{reset}: {first}", *rest]


def _line_of(source: str, line: int) -> str:
    lines = source.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _rebuild(cls: type, state: dict) -> UsqlError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("script", ""))
    error.__dict__.update(state)
    return error
