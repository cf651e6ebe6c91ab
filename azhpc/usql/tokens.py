"""Tokenizer: U-SQL script text to a list of :class:`Token` with line, column and offset.

U-SQL keywords are reserved only in upper case (``SELECT`` is a keyword, ``select`` an
identifier); identifiers are case-sensitive; ``[...]`` quotes an identifier (``]]`` inside it is
a ``]``). Embedded C# brings its literals (``"..."`` with escapes, verbatim ``@"..."``, ``'c'``
characters, numbers with ``L``/``UL``/``f``/``d``/``m`` suffixes) and operators. ``//`` and
``/* */`` are comments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from azhpc.usql.errors import ErrorCode, Span, UsqlError

__all__ = ["KEYWORDS", "Token", "TokenKind", "tokenize"]


class TokenKind(enum.Enum):
    """What a token is."""

    KEYWORD = "keyword"
    IDENT = "identifier"
    QUOTED_IDENT = "quoted identifier"
    VARIABLE = "variable"
    SYSTEM_VARIABLE = "system variable"
    STRING = "string"
    CHAR = "char"
    NUMBER = "number"
    OP = "operator"
    EOF = "end of script"


#: Upper-case words the parser treats as U-SQL keywords. Some exist only so that an unsupported
#: statement is reported by name.
KEYWORDS = frozenset(
    [
        "ALL",
        "ALTER",
        "AND",
        "ANTISEMIJOIN",
        "APPLY",
        "AS",
        "ASC",
        "ASSEMBLY",
        "BETWEEN",
        "BY",
        "CASE",
        "COMBINE",
        "CONST",
        "CREATE",
        "CROSS",
        "DATABASE",
        "DECLARE",
        "DESC",
        "DISTINCT",
        "DROP",
        "ELSE",
        "END",
        "EXCEPT",
        "EXPLODE",
        "EXTERNAL",
        "EXTRACT",
        "FETCH",
        "FIRST",
        "FROM",
        "FULL",
        "FUNCTION",
        "GROUP",
        "HAVING",
        "IF",
        "IN",
        "INNER",
        "INSERT",
        "INTERSECT",
        "INTO",
        "IS",
        "JOIN",
        "LEFT",
        "LIKE",
        "NEXT",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "ONLY",
        "OR",
        "ORDER",
        "OUTER",
        "OUTPUT",
        "OVER",
        "PARTITION",
        "PIVOT",
        "PRESORT",
        "PROCEDURE",
        "PROCESS",
        "PRODUCE",
        "READONLY",
        "REDUCE",
        "REFERENCE",
        "REQUIRED",
        "RIGHT",
        "ROW",
        "ROWS",
        "SAMPLE",
        "SCHEMA",
        "SELECT",
        "SEMIJOIN",
        "SET",
        "TABLE",
        "THEN",
        "TO",
        "UNION",
        "UNPIVOT",
        "USE",
        "USING",
        "VALUES",
        "VIEW",
        "WHEN",
        "WHERE",
        "WITH",
    ]
)

#: Multi-character operators, longest first.
_OPERATORS = ("=>", "==", "!=", "<=", ">=", "&&", "||", "??", "::", "<<")
_SINGLE = "=<>!+-*/%(),;.?:[]{}&|^~"

_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}


@dataclass(frozen=True, slots=True)
class Token:
    """One token.

    ``text`` is the exact source text; ``value`` the decoded value (a string's characters, an
    identifier's name without brackets or ``@``, a number as ``int``/``float``/``Decimal``).
    ``suffix`` holds a numeric literal's type suffix in upper case (``"L"``, ``"M"``, ...).
    """

    kind: TokenKind
    text: str
    value: object
    line: int
    column: int
    offset: int
    suffix: str = ""
    verbatim: bool = False

    @property
    def span(self) -> Span:
        """The token's position, for error messages."""
        return Span(self.line, self.column, self.offset, len(self.text))

    def is_keyword(self, *words: str) -> bool:
        """Whether this is one of the given keywords."""
        return self.kind is TokenKind.KEYWORD and self.value in words

    def is_op(self, *ops: str) -> bool:
        """Whether this is one of the given operators."""
        return self.kind is TokenKind.OP and self.value in ops


class _Scanner:
    def __init__(self, source: str, script: str) -> None:
        self.src = source
        self.script = script
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []

    def error(self, message: str, offset: int, length: int = 1) -> UsqlError:
        line = self.src.count("\n", 0, offset) + 1
        column = offset - (self.src.rfind("\n", 0, offset) + 1) + 1
        return UsqlError(
            ErrorCode.SYNTAX,
            message,
            script=self.script,
            span=Span(line, column, offset, length),
            source=self.src,
        )

    def advance_to(self, end: int) -> None:
        newlines = self.src.count("\n", self.pos, end)
        if newlines:
            self.line += newlines
            self.line_start = self.src.rfind("\n", self.pos, end) + 1
        self.pos = end

    def emit(self, kind: TokenKind, end: int, value: object, **extra: object) -> None:
        start = self.pos
        column = start - self.line_start + 1
        token = Token(kind, self.src[start:end], value, self.line, column, start, **extra)
        self.tokens.append(token)
        self.advance_to(end)

    def run(self) -> list[Token]:
        src = self.src
        n = len(src)
        if src.startswith("\ufeff"):
            self.pos = self.line_start = 1
        while self.pos < n:
            ch = src[self.pos]
            if ch in " \t\r\n\f\v":
                self.advance_to(self.pos + 1)
            elif src.startswith("//", self.pos):
                end = src.find("\n", self.pos)
                self.advance_to(n if end < 0 else end)
            elif src.startswith("/*", self.pos):
                end = src.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("comment is not closed with */", self.pos, 2)
                self.advance_to(end + 2)
            elif ch == "@":
                self.scan_at()
            elif ch == '"':
                self.scan_string(self.pos)
            elif ch == "'":
                self.scan_char()
            elif ch.isdigit() or (ch == "." and self.pos + 1 < n and src[self.pos + 1].isdigit()):
                self.scan_number()
            elif ch == "[" and not self.previous_ends_operand():
                self.scan_quoted_ident()
            elif ch.isalpha() or ch == "_":
                end = self.ident_end(self.pos)
                word = src[self.pos : end]
                kind = TokenKind.KEYWORD if word in KEYWORDS else TokenKind.IDENT
                self.emit(kind, end, word)
            else:
                self.scan_operator()
        self.tokens.append(
            Token(TokenKind.EOF, "", None, self.line, self.pos - self.line_start + 1, self.pos)
        )
        return self.tokens

    def previous_ends_operand(self) -> bool:
        if not self.tokens:
            return False
        last = self.tokens[-1]
        if last.kind in (TokenKind.IDENT, TokenKind.QUOTED_IDENT, TokenKind.VARIABLE):
            return True
        return last.is_op(")", "]")

    def ident_end(self, start: int) -> int:
        end = start
        while end < len(self.src) and (self.src[end].isalnum() or self.src[end] == "_"):
            end += 1
        return end

    def scan_at(self) -> None:
        src = self.src
        nxt = src[self.pos + 1 : self.pos + 2]
        if nxt == '"':
            self.scan_verbatim()
        elif nxt == "@":
            end = self.ident_end(self.pos + 2)
            if end == self.pos + 2:
                raise self.error("expected a name after @@", self.pos, 2)
            self.emit(TokenKind.SYSTEM_VARIABLE, end, src[self.pos + 2 : end])
        else:
            end = self.ident_end(self.pos + 1)
            if end == self.pos + 1:
                raise self.error("expected a variable name after @", self.pos)
            self.emit(TokenKind.VARIABLE, end, src[self.pos + 1 : end])

    def scan_verbatim(self) -> None:
        src = self.src
        i = self.pos + 2
        parts: list[str] = []
        while True:
            end = src.find('"', i)
            if end < 0:
                raise self.error("verbatim string is not closed", self.pos, 2)
            parts.append(src[i:end])
            if src.startswith('""', end):
                parts.append('"')
                i = end + 2
                continue
            break
        self.emit(TokenKind.STRING, end + 1, "".join(parts), verbatim=True)

    def scan_escape(self, i: int) -> tuple[str, int]:
        src = self.src
        kind = src[i + 1 : i + 2]
        if kind in _ESCAPES:
            return _ESCAPES[kind], i + 2
        if kind in ("u", "x", "U"):
            digits = 8 if kind == "U" else 4
            j = i + 2
            while j < len(src) and j < i + 2 + digits and src[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2 or (kind != "x" and j != i + 2 + digits):
                raise self.error(f"invalid escape sequence \\{kind}", i, 2)
            return chr(int(src[i + 2 : j], 16)), j
        raise self.error(f"unrecognized escape sequence \\{kind}", i, 2)

    def scan_string(self, start: int) -> None:
        src = self.src
        i = start + 1
        parts: list[str] = []
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.error("string is not closed with a double quote", start)
            ch = src[i]
            if ch == '"':
                break
            if ch == "\\":
                text, i = self.scan_escape(i)
                parts.append(text)
            else:
                parts.append(ch)
                i += 1
        self.emit(TokenKind.STRING, i + 1, "".join(parts))

    def scan_char(self) -> None:
        src = self.src
        start = self.pos
        i = start + 1
        if src[i : i + 1] == "\\":
            text, i = self.scan_escape(i)
        elif i < len(src) and src[i] not in "'\n":
            text, i = src[i], i + 1
        else:
            raise self.error("empty or unterminated character literal", start)
        if src[i : i + 1] != "'":
            raise self.error("character literal is not closed with a single quote", start)
        self.emit(TokenKind.CHAR, i + 1, text)

    def scan_number(self) -> None:
        src = self.src
        start = self.pos
        i = start
        if src.startswith(("0x", "0X"), i):
            i += 2
            while i < len(src) and src[i] in "0123456789abcdefABCDEF":
                i += 1
            value: object = int(src[start + 2 : i], 16)
            is_real = False
        else:
            while i < len(src) and src[i].isdigit():
                i += 1
            is_real = False
            if src[i : i + 1] == "." and src[i + 1 : i + 2].isdigit():
                is_real = True
                i += 1
                while i < len(src) and src[i].isdigit():
                    i += 1
            if src[i : i + 1] in ("e", "E"):
                j = i + 1
                if src[j : j + 1] in ("+", "-"):
                    j += 1
                if src[j : j + 1].isdigit():
                    is_real = True
                    i = j
                    while i < len(src) and src[i].isdigit():
                        i += 1
            digits = src[start:i]
            value = Decimal(digits) if is_real else int(digits)
        suffix_end = i
        while suffix_end < len(src) and src[suffix_end] in "lLuUfFdDmM":
            suffix_end += 1
        suffix = src[i:suffix_end].upper()
        if suffix not in ("", "L", "U", "UL", "LU", "F", "D", "M"):
            raise self.error(f"invalid numeric suffix {src[i:suffix_end]!r}", i)
        if suffix_end < len(src) and (src[suffix_end].isalpha() or src[suffix_end] == "_"):
            raise self.error("invalid number", start, suffix_end - start + 1)
        if is_real and suffix in ("L", "U", "UL", "LU"):
            raise self.error("an integer suffix on a real number", start, suffix_end - start)
        self.emit(TokenKind.NUMBER, suffix_end, value, suffix=suffix)

    def scan_quoted_ident(self) -> None:
        src = self.src
        start = self.pos
        i = start + 1
        parts: list[str] = []
        while True:
            end = src.find("]", i)
            newline = src.find("\n", i)
            if end < 0 or (0 <= newline < end):
                raise self.error("quoted identifier is not closed with ]", start)
            parts.append(src[i:end])
            if src.startswith("]]", end):
                parts.append("]")
                i = end + 2
                continue
            break
        name = "".join(parts)
        if not name:
            raise self.error("empty quoted identifier", start, 2)
        self.emit(TokenKind.QUOTED_IDENT, end + 1, name)

    def scan_operator(self) -> None:
        for op in _OPERATORS:
            if self.src.startswith(op, self.pos):
                self.emit(TokenKind.OP, self.pos + len(op), op)
                return
        ch = self.src[self.pos]
        if ch in _SINGLE:
            self.emit(TokenKind.OP, self.pos + 1, ch)
            return
        raise self.error(f"unexpected character {ch!r}", self.pos)


def tokenize(source: str, script: str = "script.usql") -> list[Token]:
    """Split a U-SQL script into tokens, ending with one :attr:`TokenKind.EOF` token.

    Parameters
    ----------
    source : str
        The script text.
    script : str
        The script's name, used in error messages.

    Returns
    -------
    list of Token

    Raises
    ------
    UsqlError
        ``E_CSC_USER_SYNTAXERROR`` for an unterminated string or comment, a bad escape, an invalid
        number or a character that is not part of U-SQL.
    """
    return _Scanner(source, script).run()
