"""The Batch REST contract: requests and responses checked against the vendored specification.

``tests/data/batch-rest-spec/BatchService.json`` is Azure's own description of the Batch REST API
for the api-version the ``azure-batch`` SDK sends. :class:`Contract` maps a request to its
operation (method + path template, e.g. ``POST /jobs/{jobId}/addtaskcollection`` ->
``Tasks_CreateTaskCollection``) and validates, with jsonschema (``$ref`` resolved within the
file), the request body against the operation's body parameter and the response body against the
schema for its status code (``default`` -> ``BatchError`` for 4xx/5xx).

How strict, and why (the point is to catch what Azure would reject, ignore or not send):

- **Unknown properties are violations, in requests and in responses.** Azure's schemas rarely
  set ``additionalProperties: false``; every object schema with ``properties`` is checked as if
  they did. A property azhpc sends that is not in the schema is one Azure ignores or rejects; one
  the emulator returns is one Azure never sends, so azhpc must not come to rely on it. The only
  exception is the top-level ``odata.metadata`` annotation of JSON responses (OData minimal
  metadata, which Azure sends and the schemas leave out).
- **Read-only properties in request bodies are violations** (Azure sets them, not the client).
- **Query parameters not declared by the operation are violations**, except ``$skiptoken`` on
  pageable operations (it only ever comes from the server's own ``odata.nextLink``);
  ``api-version`` must be the specification's version.
- **Status codes must be ones the operation declares**; 4xx/5xx fall back to ``default``.
- **Required properties are enforced** in both directions, except on the resource a response
  returns when the request had ``$select`` (Azure then sends only the selected properties), and
  for the few properties the specification marks required while its own description says Azure
  may leave them out (``_SOMETIMES_ABSENT``: a node's ``ipv6Address`` and ``lastBootTime``).
- **Formats are checked**: ``int32``/``int64`` ranges, ``date-time`` (RFC 3339), ``duration``
  (ISO 8601) and ``uri``; enums are closed (an extensible enum's unknown value is still one the
  emulator must not invent).
- A body where the operation declares none (or JSON where a file is declared) is a violation;
  file contents (``type: file``) are not validated.
- A request that matches no operation of the specification is a violation.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "batch-rest-spec" / "BatchService.json"

_PARAM = re.compile(r"\{(\w+)\}")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(
    r"^-?P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
#: Top-level response properties Azure sends that the schemas leave out (OData annotations).
_RESPONSE_ANNOTATIONS = ("odata.metadata",)
#: Properties the specification lists as required while its own description says Azure may
#: leave them out of a response; the contract follows the description.
_SOMETIMES_ABSENT = {
    # "This property will not be present if the Pool is not configured for IPv6." / "This
    # property may not be present if the Compute Node state is unusable." (a node not yet booted
    # has no boot time either).
    "BatchNode": ("ipv6Address", "lastBootTime"),
}
_MAX_MESSAGE = 300
_ITEM_INDEX = re.compile(r"/\d+(?=[/:])")


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("int32")
    def _int32(value: object) -> bool:
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    @checker.checks("int64")
    def _int64(value: object) -> bool:
        if isinstance(value, str):
            return re.fullmatch(r"-?\d+", value) is not None and -(2**63) <= int(value) < 2**63
        return not isinstance(value, int) or -(2**63) <= value < 2**63

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        return not isinstance(value, str) or _DATE_TIME.match(value) is not None

    @checker.checks("duration")
    def _duration(value: object) -> bool:
        return not isinstance(value, str) or _DURATION.match(value) is not None

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urllib.parse.urlsplit(value)
        return bool(parts.scheme and parts.netloc)

    return checker


def _strict(schema: Any, *, request: bool) -> Any:
    """A copy of ``schema`` where objects with ``properties`` forbid other properties (and, for
    requests, read-only properties are dropped so that sending one is a violation)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(schema.get("items"), dict):
        out["items"] = _strict(schema["items"], request=request)
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(schema["additionalProperties"], request=request)
    for keyword in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list):
            out[keyword] = [_strict(s, request=request) for s in schema[keyword]]
    properties = schema.get("properties")
    if isinstance(properties, dict):
        read_only = {name for name, prop in properties.items() if request and prop.get("readOnly")}
        out["properties"] = {
            name: _strict(prop, request=request)
            for name, prop in properties.items()
            if name not in read_only
        }
        if "required" in schema:
            out["required"] = [name for name in schema["required"] if name not in read_only]
        out.setdefault("additionalProperties", False)
    return out


@dataclass(frozen=True)
class Operation:
    """One operation of the specification: ``method``, path ``template``, its ``spec`` object."""

    operation_id: str
    method: str
    template: str
    spec: Mapping[str, Any]
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def body_parameter(self) -> Mapping[str, Any] | None:
        return next((p for p in self.spec.get("parameters", []) if p.get("in") == "body"), None)

    @property
    def pageable(self) -> bool:
        return "x-ms-pageable" in self.spec


@dataclass
class Check:
    """What :meth:`Contract.check` found for one exchange."""

    operation: str | None
    problems: list[str] = field(default_factory=list)
    request_checked: bool = False
    response_checked: bool = False


class Contract:
    """The vendored Batch REST specification, as a checker of requests and responses."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.version: str = self.spec["info"]["version"]
        self._checker = _format_checker()
        self._lock = threading.Lock()
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        self._definitions = {
            direction: {
                name: _strict(schema, request=direction == "request")
                for name, schema in self.spec["definitions"].items()
            }
            for direction in ("request", "response")
        }
        for name, absent in _SOMETIMES_ABSENT.items():
            schema = self._definitions["response"][name]
            schema["required"] = [p for p in schema["required"] if p not in absent]

    @cached_property
    def operations(self) -> list[Operation]:
        """Every operation, the most literal templates first (``/pools/{id}/nodes`` before
        ``/pools/{id}/{x}`` if there were one)."""
        found = []
        for template, methods in self.spec["paths"].items():
            pattern = ""
            for piece in re.split(r"(\{\w+\})", template):
                name = _PARAM.fullmatch(piece)
                if name is None:
                    pattern += re.escape(piece)
                elif name.group(1) == "filePath":
                    pattern += "(?P<filePath>.+)"
                else:
                    pattern += f"(?P<{name.group(1)}>[^/]+)"
            regex = re.compile(f"^{pattern}/?$")
            for method, spec in methods.items():
                found.append(Operation(spec["operationId"], method.upper(), template, spec, regex))
        found.sort(key=lambda op: -len(_PARAM.sub("", op.template)))
        return found

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation ``method path`` is an instance of, or ``None``."""
        for op in self.operations:
            if op.method == method.upper() and op.regex.match(path):
                return op
        return None

    # -- validation --------------------------------------------------------------------------

    def _validator(self, direction: str, name: str) -> jsonschema.protocols.Validator:
        key = (direction, name)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                definitions = self._definitions[direction]
                if name.endswith("__selected") and name not in definitions:
                    self._add_selected_variant(definitions, name.removesuffix("__selected"))
                schema = {"$ref": f"#/definitions/{name}", "definitions": definitions}
                validator = jsonschema.Draft4Validator(schema, format_checker=self._checker)
                self._validators[key] = validator
            return validator

    @staticmethod
    def _add_selected_variant(definitions: dict[str, Any], name: str) -> None:
        """``<name>__selected``: the resource without ``required`` (a ``$select`` answer); for a
        list result, its items are the selected variant of the listed resource."""
        variant = copy.deepcopy(definitions[name])
        items = variant.get("properties", {}).get("value", {}).get("items", {})
        ref = items.get("$ref", "")
        if name.endswith("ListResult") and ref.startswith("#/definitions/"):
            item_name = ref.rsplit("/", 1)[1]
            item = copy.deepcopy(definitions[item_name])
            item.pop("required", None)
            definitions[f"{item_name}__selected"] = item
            items["$ref"] = f"#/definitions/{item_name}__selected"
        else:
            variant.pop("required", None)
        definitions[f"{name}__selected"] = variant

    def validate(self, direction: str, name: str, instance: Any) -> list[str]:
        """Messages for every way ``instance`` breaks definition ``name`` (``direction`` is
        ``"request"`` or ``"response"``: how strict to be, see the module docstring)."""
        validator = self._validator(direction, name)
        problems = []
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(part) for part in error.absolute_path) or "(body)"
            message = error.message
            if len(message) > _MAX_MESSAGE:
                message = message[:_MAX_MESSAGE] + "..."
            problems.append(f"{where}: {message}")
        return problems

    def check_request(self, op: Operation, query: Mapping[str, str], body: bytes) -> list[str]:
        """Problems with a request to ``op``: its query parameters and its body."""
        problems = []
        declared = {p["name"] for p in op.spec.get("parameters", []) if p.get("in") == "query"} | {
            "api-version"
        }
        for name in query:
            if name not in declared and not (name == "$skiptoken" and op.pageable):
                problems.append(f"request: query parameter {name!r} is not one of the operation's")
        if query.get("api-version") != self.version:
            problems.append(
                f"request: api-version {query.get('api-version')!r}, the specification is "
                f"{self.version!r}"
            )
        parameter = op.body_parameter
        if not body.strip():
            if parameter is not None and parameter.get("required"):
                problems.append("request: the required body is missing")
            return problems
        if parameter is None:
            problems.append("request: a body was sent, the operation takes none")
            return problems
        try:
            instance = json.loads(body)
        except ValueError as e:
            return [*problems, f"request: the body is not JSON: {e}"]
        name = parameter["schema"]["$ref"].rsplit("/", 1)[1]
        problems += [f"request {name}: {p}" for p in self.validate("request", name, instance)]
        return problems

    def check_response(
        self,
        op: Operation,
        method: str,
        query: Mapping[str, str],
        status: int,
        content_type: str | None,
        body: bytes,
    ) -> list[str]:
        """Problems with a response to ``op``: its status code and its body."""
        responses = op.spec.get("responses", {})
        declared = responses.get(str(status))
        if declared is None:
            if status >= 400 and "default" in responses:
                declared = responses["default"]
            else:
                codes = ", ".join(code for code in responses if code != "default")
                return [f"response: status {status} is not one the operation declares ({codes})"]
        schema = declared.get("schema")
        if method.upper() == "HEAD" or schema is None:
            if body:
                return [f"response {status}: a body was sent, the specification declares none"]
            return []
        if schema.get("type") == "file":
            if content_type and content_type.startswith("application/json"):
                return [f"response {status}: JSON was sent where the specification has a file"]
            return []
        if not body:
            return [f"response {status}: the body is empty"]
        try:
            instance = json.loads(body)
        except ValueError as e:
            return [f"response {status}: the body is not JSON: {e}"]
        problems = []
        if isinstance(instance, dict):
            for annotation in _RESPONSE_ANNOTATIONS:
                if not isinstance(instance.pop(annotation, ""), str):
                    problems.append(f"response {status}: {annotation} is not a string")
        name = schema["$ref"].rsplit("/", 1)[1]
        if query.get("$select") and status < 300:
            name += "__selected"
        problems += [
            f"response {status} {name}: {p}" for p in self.validate("response", name, instance)
        ]
        return problems

    def check(self, exchange: Any) -> Check:
        """Check one exchange (an ``azhpc.emulator.batch.server.Exchange``)."""
        op = self.operation(exchange.method, exchange.path)
        if op is None:
            return Check(
                None,
                [f"no operation of the specification is {exchange.method} {exchange.path}"],
                request_checked=True,
            )
        result = Check(op.operation_id, request_checked=True, response_checked=True)
        result.problems += self.check_request(op, exchange.query, exchange.request_body)
        result.problems += self.check_response(
            op,
            exchange.method,
            exchange.query,
            exchange.status,
            exchange.response_content_type,
            exchange.response_body,
        )
        return result


@dataclass(frozen=True)
class Violation:
    """One problem with one exchange, and the test that was running when it happened."""

    test: str | None
    operation: str | None
    method: str
    path: str
    status: int
    message: str


class Recorder:
    """The observer the test session installs: checks every exchange, counts, keeps violations.

    Thread-safe (the emulator calls it from its handler threads).
    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.current_test: str | None = None
        self.requests = 0
        self.responses = 0
        self.operations: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self._lock = threading.Lock()

    def __call__(self, exchange: Any) -> None:
        test = self.current_test
        try:
            result = self.contract.check(exchange)
        except Exception as e:  # a bug in the checker is a failure too, not a silent pass
            result = Check(None, [f"the contract checker failed: {e!r}"])
        with self._lock:
            self.requests += result.request_checked
            self.responses += result.response_checked
            if result.operation:
                self.operations[result.operation] += 1
            self.violations += [
                Violation(
                    test,
                    result.operation,
                    exchange.method,
                    exchange.path,
                    exchange.status,
                    message,
                )
                for message in result.problems
            ]

    def summary(self) -> str:
        """One line: what was checked and how many violations."""
        return (
            f"Batch REST contract: {self.requests} requests, {self.responses} responses "
            f"validated against BatchService.json {self.contract.version}, "
            f"{len(self.violations)} violations"
        )

    def grouped(self) -> Iterator[tuple[Violation, int]]:
        """Violations grouped by operation and message (array indices aside): (the first one,
        how many)."""
        with self._lock:
            counts: Counter[tuple[str | None, str]] = Counter()
            first: dict[tuple[str | None, str], Violation] = {}
            for v in self.violations:
                key = (v.operation, _ITEM_INDEX.sub("/*", v.message))
                counts[key] += 1
                first.setdefault(key, v)
        for key, violation in first.items():
            yield violation, counts[key]
