"""Tokenizer: kinds, values and positions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from azhpc.usql.errors import ErrorCode, UsqlError
from azhpc.usql.tokens import TokenKind, tokenize


def kinds(text: str) -> list[tuple[TokenKind, object]]:
    return [(t.kind, t.value) for t in tokenize(text)[:-1]]


def test_tokens_keywords_are_upper_case_only() -> None:
    assert kinds("SELECT select") == [(TokenKind.KEYWORD, "SELECT"), (TokenKind.IDENT, "select")]


def test_tokens_positions_are_line_and_column() -> None:
    tokens = tokenize("@a =\n  SELECT x\n FROM @b;")
    where = {t.text: (t.line, t.column, t.offset) for t in tokens}
    assert where["@a"] == (1, 1, 0)
    assert where["SELECT"] == (2, 3, 7)
    assert where["FROM"] == (3, 2, 17)


def test_tokens_strings_decode_csharp_escapes() -> None:
    assert kinds(r'"a\tb\"c\u0041"') == [(TokenKind.STRING, 'a\tb"cA')]


def test_tokens_verbatim_string_spans_lines_and_doubles_quotes() -> None:
    tokens = tokenize('@"line1\n""q"" \\n"')
    assert tokens[0].kind is TokenKind.STRING
    assert tokens[0].value == 'line1\n"q" \\n'
    assert tokens[0].verbatim


def test_tokens_numbers_keep_suffixes() -> None:
    tokens = tokenize("1 2L 1.5 2.5f 3m 0x1F 1e3")[:-1]
    assert [(t.value, t.suffix) for t in tokens] == [
        (1, ""),
        (2, "L"),
        (Decimal("1.5"), ""),
        (Decimal("2.5"), "F"),
        (3, "M"),
        (31, ""),
        (Decimal("1e3"), ""),
    ]


def test_tokens_quoted_identifier_and_indexing() -> None:
    assert kinds("[Ext Python]]x]") == [(TokenKind.QUOTED_IDENT, "Ext Python]x")]
    assert [k for k, _ in kinds("a[0]")] == [
        TokenKind.IDENT,
        TokenKind.OP,
        TokenKind.NUMBER,
        TokenKind.OP,
    ]


def test_tokens_comments_are_skipped() -> None:
    assert kinds("a // c\n/* b\n c */ d") == [(TokenKind.IDENT, "a"), (TokenKind.IDENT, "d")]


def test_tokens_variables_and_operators() -> None:
    assert kinds("@x == @@y ?? !z") == [
        (TokenKind.VARIABLE, "x"),
        (TokenKind.OP, "=="),
        (TokenKind.SYSTEM_VARIABLE, "y"),
        (TokenKind.OP, "??"),
        (TokenKind.OP, "!"),
        (TokenKind.IDENT, "z"),
    ]


def test_tokens_unterminated_string_reports_position() -> None:
    with pytest.raises(UsqlError) as info:
        tokenize('@a =\n  "open', "t.usql")
    error = info.value
    assert (error.code, error.line, error.column) == (ErrorCode.SYNTAX, 2, 3)
    assert str(error).splitlines()[0].startswith("t.usql:2:3: E_CSC_USER_SYNTAXERROR:")
    assert str(error).splitlines()[1:3] == ['  "open', "  ^"]


def test_tokens_unexpected_character() -> None:
    with pytest.raises(UsqlError) as info:
        tokenize("a # b")
    assert (info.value.line, info.value.column) == (1, 3)
