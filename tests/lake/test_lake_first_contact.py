"""A lake that nothing answers for fails at connect() within seconds, naming its endpoint;
a lake that answers with a transient error is still retried."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import azhpc
from azhpc.config import resolve_settings
from azhpc.lake import Lake, LakeUnreachableError
from azhpc.lake.probe import PROBE_DEADLINE

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(endpoint: str) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={KEY};BlobEndpoint={endpoint};"
    )


def closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect_fails_fast(endpoint: str, within: float) -> LakeUnreachableError:
    started = time.monotonic()
    with pytest.raises(LakeUnreachableError) as info:
        azhpc.connect(
            "azure", backend="local", workers=1, container="c",
            connection_string=connection_string(endpoint),
        )  # fmt: skip
    took = time.monotonic() - started
    assert took < within, f"an unreachable lake took {took:.1f} s to fail"
    message = str(info.value)
    assert endpoint in message and "check connection_string" in message
    assert KEY not in message
    return info.value


def test_lake_on_a_closed_port_fails_at_connect_within_seconds():
    connect_fails_fast(f"http://127.0.0.1:{closed_port()}/devstoreaccount1", within=5)


def test_lake_on_an_unresolvable_host_fails_at_connect_within_seconds():
    try:
        socket.getaddrinfo("azhpc-no-such-host.invalid", 80)
    except socket.gaierror:
        pass
    else:  # pragma: no cover - a resolver that answers for .invalid
        pytest.skip("this machine's resolver resolves .invalid names")
    connect_fails_fast("http://azhpc-no-such-host.invalid/devstoreaccount1", within=5)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung service, a middlebox)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_lake_that_accepts_but_never_answers_fails_by_the_deadline(silent_listener: int):
    connect_fails_fast(
        f"http://127.0.0.1:{silent_listener}/devstoreaccount1", within=PROBE_DEADLINE + 5
    )


class _FlakyAccount(BaseHTTPRequestHandler):
    """503 to the first request, then "no such container" (404)."""

    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        first = len(self.requests) == 1
        self.send_response(503 if first else 404)
        self.send_header("x-ms-error-code", "ServerBusy" if first else "ContainerNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_account() -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    handler = type("Handler", (_FlakyAccount,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_lake_that_answers_with_a_transient_error_is_retried(flaky_account):
    endpoint, requests = flaky_account
    lake = Lake(resolve_settings("azure", connection_string=connection_string(endpoint)))
    policy = lake.filesystem().fs.service_client._config.retry_policy
    policy.initial_backoff = policy.increment_base = policy.random_jitter_range = 0  # no waits
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lake.check()  # the 503 was retried; the answer after it is the container's absence
    assert len(requests) == 2
    lake.close()
