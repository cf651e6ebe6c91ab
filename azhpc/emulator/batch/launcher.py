"""``BatchEmulator``: the local Azure Batch REST service, started on 127.0.0.1 in this process.

Examples
--------
>>> from azure.batch import BatchClient                           # doctest: +SKIP
>>> from azure.core.credentials import AzureNamedKeyCredential
>>> from azhpc.emulator.batch import BatchEmulator
>>> with BatchEmulator() as batch:
...     client = BatchClient(batch.url, AzureNamedKeyCredential(batch.account_name,
...                                                             batch.account_key))
...     client.create_pool({"id": "p", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": 2})
...     batch.preempt("p", "tvmps_0001_d")
...     batch.request_counts()
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from azhpc.core import at_exit
from azhpc.emulator.batch.faults import CONTROL_ROUTES
from azhpc.emulator.batch.guard import ProcessGuard
from azhpc.emulator.batch.model import Store
from azhpc.emulator.batch.routes_jobs import ROUTES as JOB_ROUTES
from azhpc.emulator.batch.routes_node_files import ROUTES as NODE_FILE_ROUTES
from azhpc.emulator.batch.routes_pools import ROUTES as POOL_ROUTES
from azhpc.emulator.batch.runner import Engine, Timings
from azhpc.emulator.batch.server import BatchHTTPServer, Service
from azhpc.errors import BatchEmulatorError

__all__ = ["DEFAULT_ACCOUNT_NAME", "BatchEmulator", "BatchEmulatorError"]

#: The emulated Batch account's default name.
DEFAULT_ACCOUNT_NAME = "devbatch"


class BatchEmulator:
    """A local Azure Batch service for the ``azure-batch`` SDK, on 127.0.0.1, on a free port.

    A context manager; also ``start()`` / ``stop()``. Runs in threads of this process; task
    processes run under ``root`` and are killed on ``stop()`` (also called at interpreter exit).

    Parameters
    ----------
    account_name
        The emulated account's name (default ``devbatch``).
    account_key
        Its base64 key; default: a fresh random key per emulator.
    host
        Loopback address to listen on.
    port
        Port; 0 (default) lets the system pick a free one.
    root
        Folder for the nodes' files; default: a temporary folder removed on ``stop()``.
    timings
        :class:`~azhpc.emulator.batch.runner.Timings` (node boot, preemption, deletion delays).
    certificates
        :class:`~azhpc.emulator.certs.TestCertificates`: serve HTTPS with its server
        certificate (clients must trust its CA); ``None`` (default): plain HTTP.
    auth
        ``"sharedkey"`` (default) or ``"token"``: Microsoft Entra ID bearer tokens only
        (audience ``https://batch.core.windows.net/``), SharedKey refused, as on an account
        with shared keys disabled.
    token_signing_key
        In token mode, also check each token's HMAC signature with this key (the
        :class:`~azhpc.emulator.tokens.TestTokenCredential`'s ``signing_key``).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT`` (``https://`` with certificates), the account endpoint,
        once started.
    """

    def __init__(
        self,
        *,
        account_name: str = DEFAULT_ACCOUNT_NAME,
        account_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        root: str | Path | None = None,
        timings: Any = None,
        certificates: Any = None,
        auth: str = "sharedkey",
        token_signing_key: bytes | None = None,
    ) -> None:
        if auth not in ("sharedkey", "token"):
            raise ValueError(f"auth must be 'sharedkey' or 'token', not {auth!r}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the Batch emulator listens on loopback only, not {host!r}")
        self.account_name = account_name
        self.account_key = account_key or base64.b64encode(secrets.token_bytes(64)).decode()
        self.host = host
        self.requested_port = port
        self.root_arg = root
        self.timings = timings
        self.certificates = certificates
        self.auth = auth
        self._token_signing_key = token_signing_key
        self.port: int | None = None
        self.root: Path | None = None
        self._owns_root = False
        self._server: Any = None
        self._engine: Any = None
        self._thread: threading.Thread | None = None
        self._attached = False
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, url: str, account_name: str, account_key: str) -> BatchEmulator:
        """A handle on an emulator that another process runs (``azhpc emulator start``): its
        control API (faults, request counts) works; ``stop()`` leaves it running."""
        host_port = url.split("//", 1)[-1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        handle = cls(account_name=account_name, account_key=account_key, host=host or "127.0.0.1")
        handle.port = int(port)
        handle._attached = True
        return handle

    def __repr__(self) -> str:
        state = f"listening on {self.url}" if self.running else "stopped"
        if self._attached:
            state = f"run by another process, at {self.url}"
        return f"<azhpc.emulator.BatchEmulator {self.account_name} {state}>"

    def __enter__(self) -> BatchEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._server is not None

    @property
    def url(self) -> str:
        """The account endpoint, ``http://127.0.0.1:PORT``."""
        if self.port is None:
            raise BatchEmulatorError("the Batch emulator is not started")
        scheme = "https" if self.certificates is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> BatchEmulator:
        """Listen on the loopback port and start the scheduler; returns ``self``.

        Raises
        ------
        BatchEmulatorError
            The port could not be bound.
        """

        with self._lock:
            if self._server is not None or self._attached:
                return self
            try:
                server = BatchHTTPServer(
                    (self.host, self.requested_port),
                    self.account_key,
                    POOL_ROUTES + NODE_FILE_ROUTES + JOB_ROUTES,
                    CONTROL_ROUTES,
                    tls=self.certificates.server_context() if self.certificates else None,
                    token_auth=self.auth == "token",
                    token_signing_key=self._token_signing_key,
                )
            except OSError as e:
                raise BatchEmulatorError(
                    f"the Batch emulator could not listen on {self.host}:{self.requested_port}: {e}"
                ) from e
            self.port = int(server.server_address[1])
            if self.root_arg is None:
                self.root = Path(tempfile.mkdtemp(prefix="azhpc-batch-emulator-"))
                self._owns_root = True
            else:
                self.root = Path(self.root_arg)
                self.root.mkdir(parents=True, exist_ok=True)
            store = Store(self.root)
            # Node processes, and the temporary root, go even if this process is killed.
            store.guard = ProcessGuard(remove=self.root if self._owns_root else None)
            engine = Engine(store, self.account_name, self.url, self.timings or Timings())
            server.service = Service(store, engine, self.url, self.account_name)
            engine.start()
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"batch-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
            self._server, self._engine = server, engine
            at_exit.release_at_exit(self, "stop")
        return self

    def stop(self) -> None:
        """Stop serving, kill every task process, remove the temporary root. Idempotent."""
        with self._lock:
            server, engine = self._server, self._engine
            self._server = self._engine = None
            if server is None:
                return
            server.shutdown()
            server.server_close()
            engine.stop()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self._owns_root and self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
            at_exit.forget(self)

    # -- control API (fault injection, request counts) ------------------------------------------

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            context = None
            if self.certificates is not None:
                context = ssl.create_default_context(cafile=str(self.certificates.ca_file))
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            detail = json.loads(e.read() or b"{}")
            message = (detail.get("message") or {}).get("value", "").split("\n")[0]
            raise BatchEmulatorError(
                f"{method} /_emulator/{path}: {e.code} {detail.get('code')}: {message}"
            ) from e

    def inject(self, fault: str, pool_id: str, node_id: str | None = None, **options: Any) -> Any:
        """Inject a fault: ``"preempt"`` / ``"unusable"`` (a node) or ``"starttaskfailure"``.

        Parameters
        ----------
        fault
            ``preempt``, ``unusable`` or ``starttaskfailure``.
        pool_id, node_id
            Where (``node_id`` for node faults).
        **options
            The JSON body (``comeBack=False``, ``enabled=False``).
        """
        if fault in ("preempt", "unusable"):
            if not node_id:
                raise ValueError(f"{fault!r} needs a node_id")
            return self._control("POST", f"pools/{pool_id}/nodes/{node_id}/{fault}", options)
        if fault == "starttaskfailure":
            return self._control("POST", f"pools/{pool_id}/starttaskfailure", options)
        raise ValueError(
            f"unknown fault {fault!r}; valid: 'preempt', 'unusable', 'starttaskfailure'"
        )

    def preempt(self, pool_id: str, node_id: str, *, come_back: bool = True) -> Any:
        """Preempt a node: its running tasks are requeued; it boots again unless told not to."""
        return self.inject("preempt", pool_id, node_id, comeBack=come_back)

    def make_unusable(self, pool_id: str, node_id: str) -> Any:
        """Make a node ``unusable`` (its running tasks are requeued)."""
        return self.inject("unusable", pool_id, node_id)

    def fail_start_task(
        self, pool_id: str, *, enabled: bool = True, nodes: list[str] | None = None
    ) -> Any:
        """Make the pool's start task fail on every node, or on ``nodes`` only; the nodes
        reboot to run it (``enabled=False`` heals them)."""
        options: dict[str, Any] = {"enabled": enabled}
        if nodes is not None:
            options["nodes"] = list(nodes)
        return self.inject("starttaskfailure", pool_id, **options)

    def throttle(
        self,
        operations: list[str],
        *,
        status: int = 503,
        count: int = 1,
        retry_after: int = 1,
    ) -> Any:
        """Throttle operations as Batch does under load: their next ``count`` requests answer
        ``status`` (429 ``TooManyRequests`` or 503 ``ServerBusy``) with ``Retry-After:
        retry_after``; ``count=0`` stops throttling them.

        Parameters
        ----------
        operations
            REST operation ids (``["Task_List", "Job_GetTaskCounts"]``), or ``["*"]`` for any.
        status
            429 or 503.
        count
            How many requests of each operation are refused.
        retry_after
            The ``Retry-After`` header, in seconds.
        """
        body = {
            "operations": list(operations),
            "status": status,
            "count": count,
            "retryAfter": retry_after,
        }
        return self._control("POST", "throttle", body)

    def request_counts(self) -> dict[str, int]:
        """Requests received so far, by REST operation id (``Task_AddCollection``, ...)."""
        return dict(self._control("GET", "requestcounts"))

    def reset_request_counts(self) -> None:
        """Forget the request counts."""
        self._control("DELETE", "requestcounts")
