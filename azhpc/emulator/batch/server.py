"""The HTTP side of the Batch emulator: routing, SharedKey checks, JSON and error bodies.

``ThreadingHTTPServer`` on 127.0.0.1, HTTP/1.1 with keep-alive (the SDK pools connections). The
Batch namespace (``/pools``, ``/jobs``, ...) needs a valid SharedKey signature and an
``api-version``; ``/_emulator/...`` (fault injection, request counts) needs neither but answers
loopback clients only. Every Batch request is counted under its REST operation id
(``Pool_Add``, ``Task_AddCollection``, ...).

Observers (off unless added): :func:`add_observer` registers a callable, process-wide, that is
given every Batch-namespace request and the response about to be sent (an :class:`Exchange`),
in the handler thread, before the client reads the response; the control API is not observed.
The test suite uses this to check every body against the Batch REST specification.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from azhpc.emulator.batch.auth import check_bearer, check_shared_key
from azhpc.emulator.batch.model import ApiError, Store, utcnow
from azhpc.emulator.batch.runner import Engine

__all__ = [
    "BatchHTTPServer",
    "Exchange",
    "Request",
    "Response",
    "Route",
    "Service",
    "add_observer",
    "remove_observer",
]

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.\d+\.\d+)?$")
_JSON = "application/json;odata=minimalmetadata"
_LOOPBACK = {"127.0.0.1", "::1"}


@dataclass
class Request:
    """A parsed request as handlers see it."""

    method: str
    path: str
    args: dict[str, str]
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The JSON body (``{}`` when empty); 400 ``InvalidRequestBody`` when malformed."""
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as e:
            raise ApiError(400, "InvalidRequestBody", f"The request body is not JSON: {e}") from e
        if not isinstance(value, dict):
            raise ApiError(400, "InvalidRequestBody", "The request body must be a JSON object.")
        return value


@dataclass
class Response:
    """What a handler returns: status, a JSON-able body or bytes, extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Service:
    """What handlers work with: the state, the engine and the public base URL."""

    store: Store
    engine: Engine
    base_url: str
    account_name: str


Handler = Callable[[Service, Request], Response]


@dataclass(frozen=True)
class Exchange:
    """One Batch REST request and the response the emulator sends back, as observers see them.

    ``path`` is percent-decoded and without the query; ``response_body`` is exactly the bytes
    sent (empty for ``HEAD``); ``operation`` is the emulator's operation id (``None`` when no
    route matched, i.e. a 404 ``InvalidUri`` or 405).
    """

    method: str
    path: str
    query: Mapping[str, str]
    request_body: bytes
    status: int
    response_content_type: str | None
    response_body: bytes
    operation: str | None


Observer = Callable[[Exchange], None]

_observers: list[Observer] = []
_observers_lock = threading.Lock()


def add_observer(observer: Observer) -> None:
    """Give ``observer`` every Batch request and response of every emulator in this process."""
    with _observers_lock:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    """Stop giving exchanges to ``observer`` (no error if it was not added)."""
    with _observers_lock:
        if observer in _observers:
            _observers.remove(observer)


def _notify(exchange: Exchange) -> None:
    with _observers_lock:
        observers = list(_observers)
    for observer in observers:
        try:
            observer(exchange)
        except Exception:  # an observer's bug must not break the emulator's answer
            pass


@dataclass(frozen=True)
class Route:
    """``METHOD /path/{arg}`` -> operation id and handler."""

    method: str
    pattern: str
    operation: str
    handler: Handler
    regex: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.pattern))
        if self.pattern.endswith("{filePath}"):
            regex = regex.replace("(?P<filePath>[^/]+)", "(?P<filePath>.+)")
        object.__setattr__(self, "regex", re.compile(f"^{regex}/?$"))


def resource_headers(resource: Any, location: str | None = None) -> dict[str, str]:
    """``ETag``, ``Last-Modified`` (and ``Location``/``DataServiceId``) of a resource."""
    headers = {
        "ETag": resource.etag,
        "Last-Modified": format_datetime(resource.last_modified, usegmt=True),
    }
    if location:
        headers["Location"] = location
        headers["DataServiceId"] = location
    return headers


def error_body(base_url: str, err: ApiError) -> dict[str, Any]:
    """Batch's error shape: ``{"code", "message": {"lang", "value"}, "values"?}``."""
    body: dict[str, Any] = {
        "odata.metadata": f"{base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities"
        ".Container.errors/@Element",
        "code": err.code,
        "message": {
            "lang": "en-US",
            "value": f"{err.message}\nRequestId:{uuid.uuid4()}\nTime:{utcnow().isoformat()}",
        },
    }
    values = [{"key": key, "value": value} for key, value in getattr(err, "values", ())]
    detail = getattr(err, "detail", None)
    if detail:
        values.append({"key": "AuthenticationErrorDetail", "value": detail})
    if values:
        body["values"] = values
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BatchHTTPServer
    server_version = "BatchEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        self.tls_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):  # an untrusting client hung up: nothing to answer
                self.tls_failed = True
            self.request.settimeout(None)
        super().setup()

    def handle(self) -> None:
        if not self.tls_failed:
            super().handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query).items()}
        headers = {k: v for k, v in self.headers.items()}
        srv = self.server
        service = srv.service
        observed = not path.startswith("/_emulator/")
        route: Route | None = None
        try:
            if not observed:
                if self.client_address[0] not in _LOOPBACK:
                    raise ApiError(403, "Forbidden", "The emulator control API is loopback only.")
                routes, operation = srv.control_routes, None
            else:
                routes, operation = srv.routes, ""
            route, args = self._route(routes, self.command, path)
            if operation is not None:
                with service.store.lock:
                    service.store.request_counts[route.operation] += 1
                if srv.token_auth:
                    check_bearer(headers, srv.token_signing_key)
                else:
                    check_shared_key(
                        self.command, self.path, headers, service.account_name, srv.account_key
                    )
                if not query.get("api-version"):
                    raise ApiError(
                        400,
                        "MissingRequiredQueryParameter",
                        "A query parameter that's mandatory for this request is not specified: "
                        "api-version.",
                    )
                if not _API_VERSION.match(query["api-version"]):
                    raise ApiError(
                        400, "InvalidQueryParameterValue", "The api-version is not valid."
                    )
                throttled = service.store.take_throttle(route.operation)
                if throttled is not None:  # fault injection (faults.py)
                    raise throttled
            request = Request(self.command, path, args, query, headers, body)
            response = route.handler(service, request)
        except ApiError as err:
            headers = dict(getattr(err, "headers", None) or {})
            response = Response(err.status, error_body(service.base_url, err), headers)
        except Exception as exc:  # a bug in the emulator: answer like the service would
            err = ApiError(500, "InternalServerError", f"Emulator error: {exc!r}")
            response = Response(500, error_body(service.base_url, err))
        exchange = None
        if observed and _observers:
            exchange = Exchange(
                self.command, path, query, body, 0, None, b"", route.operation if route else None
            )
        self._send(response, exchange)

    @staticmethod
    def _route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]]:
        method_seen = False
        for route in routes:
            match = route.regex.match(path)
            if match:
                method_seen = True
                if route.method == method:
                    return route, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        if method_seen:
            raise ApiError(405, "UnsupportedHttpVerb", "The HTTP verb is not supported here.")
        raise ApiError(
            404, "InvalidUri", f"The requested URI does not represent any resource: {path}"
        )

    def _send(self, response: Response, exchange: Exchange | None = None) -> None:
        payload: bytes
        headers = {"request-id": str(uuid.uuid4())}
        client_request_id = self.headers.get("client-request-id")
        if client_request_id:
            headers["client-request-id"] = client_request_id
        if isinstance(response.body, bytes):
            payload = response.body
            headers["Content-Type"] = "application/octet-stream"
        elif response.body is None:
            payload = b""
        else:
            payload = json.dumps(response.body).encode()
            headers["Content-Type"] = _JSON
        headers.update(response.headers)
        if self.command == "HEAD":
            headers.setdefault("Content-Length", str(len(payload)))
            payload = b""
        else:
            headers["Content-Length"] = str(len(payload))
        if exchange is not None:
            content_type = headers.get("Content-Type")
            _notify(
                replace(
                    exchange,
                    status=response.status,
                    response_content_type=content_type,
                    response_body=payload,
                )
            )
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class BatchHTTPServer(ThreadingHTTPServer):
    """The emulator's HTTP server; ``service`` holds the state, ``routes`` the REST surface.

    With ``tls`` (a server :class:`ssl.SSLContext`) it serves HTTPS; the TLS handshake runs
    in the request's thread, so a client that fails it holds up no one. With
    ``token_auth`` the Batch namespace wants Entra ID bearer tokens and refuses SharedKey
    (``token_signing_key``: check their HMAC signature too).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        account_key: str,
        routes: list[Route],
        control_routes: list[Route],
        *,
        tls: ssl.SSLContext | None = None,
        token_auth: bool = False,
        token_signing_key: bytes | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.tls = tls
        self.token_auth = token_auth
        self.token_signing_key = token_signing_key
        self.account_key = account_key
        self.routes = routes
        self.control_routes = control_routes
        self.service: Service  # set by the launcher once the port is known
