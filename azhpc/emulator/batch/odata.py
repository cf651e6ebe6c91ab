"""The OData subset Batch list operations take: ``$filter``, ``$select``, ``maxresults`` paging.

``$filter`` supports comparisons (``eq ne gt ge lt le``) of a property (``state``,
``executionInfo/exitCode``, ...) with a string, number, boolean or ``datetime'...'``
literal, ``startswith(prop, 'text')``, ``and``/``or``/``not`` and parentheses, which covers
the filters Batch documents for pools, nodes, jobs and tasks. Paging is keyset-based: the
``$skiptoken`` of ``odata.nextLink`` carries the last id returned, so an item appears at most
once even when the list changes between pages.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from azhpc.emulator.batch.model import ApiError

__all__ = ["compile_filter", "page", "select"]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<dt>datetime'[^']*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_$][\w/.$]*))"
)
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
}

Predicate = Callable[[dict[str, Any]], bool]


def _bad(text: str, why: str) -> ApiError:
    return ApiError(
        400,
        "InvalidQueryParameterValue",
        f"Value for one of the query parameters specified in the request URI is invalid. "
        f"$filter={text!r}: {why}",
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise _bad(text, f"unexpected text at {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _lookup(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _bad(self.text, "unexpected end")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise _bad(self.text, f"expected {value!r}")

    def parse(self) -> Predicate:
        pred = self.disjunction()
        if self.peek() is not None:
            raise _bad(self.text, f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return pred

    def disjunction(self) -> Predicate:
        left = self.conjunction()
        while (tok := self.peek()) and tok[1].lower() == "or":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda x: a(x) or b(x))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.unary()
        while (tok := self.peek()) and tok[1].lower() == "and":
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda x: a(x) and b(x))(left, right)
        return left

    def unary(self) -> Predicate:
        tok = self.peek()
        if tok and tok[1].lower() == "not":
            self.take()
            inner = self.unary()
            return lambda x: not inner(x)
        if tok and tok[1] == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        if tok and tok[1].lower() == "startswith":
            self.take()
            self.expect("(")
            prop = self.take()[1]
            self.expect(",")
            prefix = self.literal()
            self.expect(")")
            return lambda x: str(_lookup(x, prop) or "").startswith(str(prefix))
        kind, prop = self.take()
        if kind != "word":
            raise _bad(self.text, f"expected a property name, got {prop!r}")
        op = self.take()[1].lower()
        if op not in _OPS:
            raise _bad(self.text, f"unknown operator {op!r}")
        value = self.literal()
        compare = _OPS[op]

        def predicate(x: dict[str, Any]) -> bool:
            actual = _lookup(x, prop)
            try:
                return bool(compare(actual, value))
            except TypeError:
                return False

        return predicate

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "dt":
            return text[len("datetime'") : -1]
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise _bad(self.text, f"expected a literal, got {text!r}")


def compile_filter(text: str | None) -> Predicate:
    """A predicate over an item's REST JSON for an OData ``$filter`` (``None``: all items).

    Raises
    ------
    ApiError
        400 ``InvalidQueryParameterValue`` for text outside the supported subset.
    """
    if not text or not text.strip():
        return lambda _x: True
    return _Parser(text).parse()


def select(item: dict[str, Any], properties: str | None) -> dict[str, Any]:
    """Keep only the top-level properties named in ``$select`` (comma separated)."""
    if not properties:
        return item
    wanted = {p.strip().split("/")[0] for p in properties.split(",") if p.strip()}
    return {k: v for k, v in item.items() if k in wanted}


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(
            400, "InvalidQueryParameterValue", f"$skiptoken {token!r} is not valid"
        ) from e


def page(
    items: Iterable[tuple[str, dict[str, Any]]],
    query: dict[str, str],
    next_url: str,
    *,
    default_max: int = 1000,
) -> dict[str, Any]:
    """One page of a list response: ``{"value": [...], "odata.nextLink": ...}``.

    Parameters
    ----------
    items
        ``(id, json)`` pairs in list order (ids unique and stable).
    query
        The request's query parameters (``$filter``, ``$select``, ``maxresults``,
        ``$skiptoken``).
    next_url
        The list's URL without query, for ``odata.nextLink``.
    default_max
        Page size when ``maxresults`` is absent (Batch: 1000).
    """
    predicate = compile_filter(query.get("$filter"))
    try:
        max_results = int(query.get("maxresults") or default_max)
    except ValueError as e:
        raise ApiError(400, "InvalidQueryParameterValue", "maxresults must be an integer") from e
    max_results = max(1, min(max_results, default_max))
    after = _decode_token(query["$skiptoken"]) if query.get("$skiptoken") else None
    value: list[dict[str, Any]] = []
    last_id: str | None = None
    more = False
    skipping = after is not None
    for item_id, item in items:
        if skipping:
            skipping = item_id != after
            continue
        if not predicate(item):
            continue
        if len(value) == max_results:
            more = True
            break
        value.append(select(item, query.get("$select")))
        last_id = item_id
    body: dict[str, Any] = {"value": value}
    if more and last_id is not None:
        params = {k: v for k, v in query.items() if k != "$skiptoken" and v}
        params["maxresults"] = str(max_results)
        params["$skiptoken"] = _encode_token(last_id)
        body["odata.nextLink"] = (
            f"{next_url}?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"
        )
    return body
