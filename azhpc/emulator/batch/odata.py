"""The OData subset Batch list operations take: ``$filter``, ``$select``, ``maxresults`` paging.

``$filter`` is as strict as the service: each list operation accepts only the properties Batch
documents as filterable for it, each with its documented operators and literal type (see
:data:`FILTERABLE`); anything else (another property, ``not``, an operator the property does
not allow, a literal of the wrong type) is a 400 ``InvalidQueryParameterValue`` whose
``values`` name the parameter (``QueryParameterName: $filter``), its value and the reason, the
error shape of "Batch status and error codes" (learn.microsoft.com/rest/api/batchservice/
batch-status-and-error-codes). Conditions combine with ``and``/``or`` and parentheses
("Filter conditions can be combined using the "AND" and "OR" operators", OData filters in
Azure Batch). Paging is keyset-based: the ``$skiptoken`` of ``odata.nextLink`` carries the last
id returned, so an item appears at most once even when the list changes between pages.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from azhpc.emulator.batch.model import ApiError

__all__ = ["FILTERABLE", "Filterable", "compile_filter", "filterable_for", "page", "select"]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<dt>datetime'[^']*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_$][\w/.$]*))"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
}

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Filterable:
    """A property a list operation can be filtered on: its operators and literal type.

    ``path`` is where the value sits in the item's REST JSON when the documented name differs
    (List Tasks documents ``lastModifiedTime`` for the task's ``lastModified``).
    """

    operators: frozenset[str]
    type: str  # "string", "datetime", "int" or "boolean"
    path: str | None = None
    values: frozenset[str] | None = None  # the enum's values, for enum-typed strings


_COMPARE = frozenset({"eq", "ne", "ge", "gt", "le", "lt"})
_EQ = frozenset({"eq"})
_EQ_NE = frozenset({"eq", "ne"})
_STARTS = _COMPARE | {"startswith"}
_TIME = Filterable(_COMPARE, "datetime")
_INT = Filterable(_COMPARE, "int")
_RESULT = Filterable(_EQ_NE, "string", values=frozenset({"success", "failure"}))
_JOB_STATES = frozenset(
    ("active", "disabling", "disabled", "enabling", "terminating", "completed", "deleting")
)

#: The filterable properties of each list operation, keyed by the last segment of the list's
#: URL (``/jobs/{id}/tasks`` -> ``tasks``). Source: "OData filters in Azure Batch"
#: (learn.microsoft.com/rest/api/batchservice/odata-filters-in-batch, the tables "List tasks",
#: "List jobs", "List pools", "List nodes in a pool", "List task files", "List compute node
#: files"; its markdown source in MicrosoftDocs' azure-docs-rest-apis, batchservice/
#: odata-filters-in-batch.md). ``state`` takes ``eq`` only where that table says so (tasks, jobs,
#: pools); the current page allows ``eq, ne`` for the state of nodes. Retry and requeue counts
#: (``executionInfo/retryCount``, ``executionInfo/requeueCount``) are not filterable anywhere.
FILTERABLE: Mapping[str, Mapping[str, Filterable]] = {
    "tasks": {
        "id": Filterable(_STARTS, "string"),
        "state": Filterable(
            _EQ, "string", values=frozenset({"active", "preparing", "running", "completed"})
        ),
        "stateTransitionTime": _TIME,
        "creationTime": _TIME,
        "lastModifiedTime": Filterable(_COMPARE, "datetime", path="lastModified"),
        "executionInfo/startTime": _TIME,
        "executionInfo/endTime": _TIME,
        "executionInfo/exitCode": _INT,
        "executionInfo/result": _RESULT,
    },
    "jobs": {
        "id": Filterable(_STARTS, "string"),
        "state": Filterable(_EQ, "string", values=_JOB_STATES),
        "stateTransitionTime": _TIME,
        "creationTime": _TIME,
        "lastModified": _TIME,
        "executionInfo/startTime": _TIME,
        "executionInfo/endTime": _TIME,
        "executionInfo/poolId": Filterable(_STARTS, "string"),
    },
    "pools": {
        "id": Filterable(_STARTS, "string"),
        "state": Filterable(_EQ, "string", values=frozenset({"active", "deleting"})),
        "stateTransitionTime": _TIME,
        "allocationState": Filterable(
            _EQ, "string", values=frozenset({"steady", "resizing", "stopping"})
        ),
        "allocationStateTransitionTime": _TIME,
        "creationTime": _TIME,
        "enableAutoScale": Filterable(_EQ_NE, "boolean"),
        "lastModified": _TIME,
        "vmSize": Filterable(_EQ_NE, "string"),
        "enableInterNodeCommunication": Filterable(_EQ_NE, "boolean"),
    },
    "nodes": {
        "state": Filterable(_EQ_NE, "string"),
        "stateTransitionTime": _TIME,
        "lastBootTime": _TIME,
        "allocationTime": _TIME,
        "startTaskInfo/state": Filterable(_EQ, "string"),
        "startTaskInfo/result": _RESULT,
        "startTaskInfo/exitCode": _INT,
        "startTaskInfo/startTime": _TIME,
        "startTaskInfo/endTime": _TIME,
    },
    "files": {"name": Filterable(frozenset({"startswith"}), "string")},
}


def _bad(text: str, why: str) -> ApiError:
    return ApiError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        values=[("QueryParameterName", "$filter"), ("QueryParameterValue", text), ("Reason", why)],
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


def _datetime(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class _Parser:
    def __init__(self, text: str, filterable: Mapping[str, Filterable]) -> None:
        self.text = text
        self.filterable = filterable
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

    def _property(self, name: str, operator: str) -> Filterable:
        """The documented property ``name``, if it allows ``operator``; else 400."""
        prop = self.filterable.get(name)
        if prop is None:
            allowed = ", ".join(self.filterable) or "none"
            raise _bad(
                self.text, f"the property {name!r} cannot be filtered on here (allowed: {allowed})"
            )
        if operator not in prop.operators:
            raise _bad(
                self.text,
                f"the operator {operator!r} is not allowed on {name!r} "
                f"(allowed: {', '.join(sorted(prop.operators))})",
            )
        return prop

    def unary(self) -> Predicate:
        tok = self.peek()
        if tok and tok[1].lower() == "not":
            raise _bad(self.text, "'not' is not supported; combine conditions with and/or")
        if tok and tok[1] == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        if tok and tok[1].lower() == "startswith":
            self.take()
            self.expect("(")
            name = self.take()[1]
            prop = self._property(name, "startswith")
            self.expect(",")
            prefix = self.literal(prop, name)
            self.expect(")")
            path = prop.path or name
            return lambda x: str(_lookup(x, path) or "").startswith(str(prefix))
        kind, name = self.take()
        if kind != "word":
            raise _bad(self.text, f"expected a property name, got {name!r}")
        op = self.take()[1].lower()
        if op not in _OPS:
            raise _bad(self.text, f"unknown operator {op!r}")
        prop = self._property(name, op)
        value = self.literal(prop, name)
        compare = _OPS[op]
        path = prop.path or name
        is_time = prop.type == "datetime"

        def predicate(x: dict[str, Any]) -> bool:
            actual = _lookup(x, path)
            if is_time and isinstance(actual, str):
                actual = _datetime(actual)
            try:
                return bool(compare(actual, value))
            except TypeError:
                return False

        return predicate

    def literal(self, prop: Filterable, name: str) -> Any:
        """The next literal, which must be of ``prop``'s type (and one of its enum values)."""
        kind, text = self.take()
        wrong = _bad(self.text, f"{text!r} is not a {prop.type} value for {name!r}")
        if prop.type == "string":
            if kind != "str":
                raise wrong
            value = text[1:-1].replace("''", "'")
            if prop.values is not None and value not in prop.values:
                raise _bad(self.text, f"{value!r} is not a valid {name}")
            return value
        if prop.type == "datetime":
            parsed = _datetime(text[len("datetime'") : -1]) if kind == "dt" else None
            if parsed is None:
                raise wrong
            return parsed
        if prop.type == "int":
            if kind != "num" or "." in text:
                raise wrong
            return int(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise wrong


def filterable_for(next_url: str) -> Mapping[str, Filterable]:
    """The filterable properties of the list at ``next_url`` (by its last path segment)."""
    return FILTERABLE.get(urllib.parse.urlsplit(next_url).path.rstrip("/").rsplit("/", 1)[-1], {})


def compile_filter(text: str | None, filterable: Mapping[str, Filterable]) -> Predicate:
    """A predicate over an item's REST JSON for an OData ``$filter`` (``None``: all items).

    Parameters
    ----------
    text
        The ``$filter`` query parameter.
    filterable
        The properties the list can be filtered on (an entry of :data:`FILTERABLE`).

    Raises
    ------
    ApiError
        400 ``InvalidQueryParameterValue`` for a filter Batch would refuse.
    """
    if not text or not text.strip():
        return lambda _x: True
    return _Parser(text, filterable).parse()


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
    filterable: Mapping[str, Filterable] | None = None,
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
    filterable
        What ``$filter`` may name; default: the table of :data:`FILTERABLE` for the list
        ``next_url`` ends in (``tasks``, ``jobs``, ``pools``, ``nodes``, ``files``).
    """
    predicate = compile_filter(
        query.get("$filter"), filterable if filterable is not None else filterable_for(next_url)
    )
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
