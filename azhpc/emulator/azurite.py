"""Start and stop Azurite, the Azure Storage emulator, on 127.0.0.1.

Azurite is an npm package (``azurite``). The project's ``package.json`` pins it and
``./dev test`` installs it (``npm ci``) into ``node_modules/``. :class:`Azurite` starts only its
Blob service (the API adlfs speaks), with in-memory persistence, on a free loopback port, with
``--skipApiVersionCheck`` (the Azure SDKs send newer API versions than it knows).

Azurite never outlives its owner: it runs under a tiny guard process in its own process group;
the guard holds a pipe from this process and, when the pipe closes (``stop()``, interpreter
exit, or this process dying, even by SIGKILL), terminates Azurite and its whole group.

Examples
--------
>>> from azhpc.emulator.azurite import Azurite
>>> with Azurite() as azurite:                      # doctest: +SKIP
...     fs = adlfs.AzureBlobFileSystem(connection_string=azurite.connection_string)
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from azhpc.core import at_exit
from azhpc.errors import AzhpcError, AzuriteNotFoundError, AzuriteStartError

__all__ = [
    "AZURITE_VERSION",
    "DEV_ACCOUNT_NAME",
    "Azurite",
    "AzuriteNotFoundError",
    "AzuriteStartError",
    "find_azurite",
]

#: The Azurite version the project pins in ``package.json`` (the newest that installs on Node 20).
AZURITE_VERSION = "3.35.0"

#: Azurite's well-known development account.
DEV_ACCOUNT_NAME = "devstoreaccount1"

# Azurite's published development key: public, but still never printed or logged by azhpc.
_DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_LISTENING = re.compile(r"Blob service (?:is )?successfully listen(?:s|ing) (?:on|at) (\S+)")

_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Runs with ``python -I -S -c`` in Azurite's workspace (argv[1]): start Azurite (argv[2:]) and
# wait for stdin to close; then terminate it and everything else in this process group, and
# remove the workspace (so it goes even when the owner was killed outright). Also exits when
# Azurite does, with its exit code (a signal N as 128 + N). Signal handlers are set on the main
# thread only: ``signal.signal`` raises in any other thread.
_GUARD = """\
import os, shutil, signal, subprocess, sys, threading
workspace = sys.argv[1]
child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the guard outlives its own killpg (main thread)
def _reap_group():
    try:
        os.killpg(0, signal.SIGTERM)
    except OSError:
        pass
    shutil.rmtree(workspace, ignore_errors=True)
def _follow():
    code = child.wait()
    _reap_group()
    os._exit(code if code >= 0 else 128 - code)
threading.Thread(target=_follow, daemon=True).start()
try:
    while sys.stdin.buffer.read(65536):
        pass
except BaseException:
    pass
child.terminate()
try:
    child.wait(5)
except BaseException:
    child.kill()
_reap_group()
os._exit(0)
"""


def find_azurite(executable: str | os.PathLike[str] | None = None) -> list[str]:
    """The command that starts Azurite's Blob service.

    Looks, in order, at ``executable``, the ``AZHPC_AZURITE`` environment variable, the
    project's ``node_modules/.bin`` (installed by ``npm ci`` / ``./dev test``), the current
    folder's ``node_modules/.bin``, and ``PATH``. Prefers ``azurite-blob`` (Blob service only)
    next to an ``azurite`` found.

    Parameters
    ----------
    executable
        An explicit path to ``azurite`` or ``azurite-blob``.

    Returns
    -------
    list of str
        The command, ready for extra arguments.

    Raises
    ------
    AzuriteNotFoundError
        Azurite is nowhere to be found, or Node.js is missing.
    """
    explicit = executable or os.environ.get("AZHPC_AZURITE")
    looked: list[str] = []
    found: Path | None = None
    if explicit:
        looked.append(f"{explicit} (explicit/AZHPC_AZURITE)")
        candidate = Path(explicit).expanduser()
        if candidate.is_file():
            found = candidate
        elif which := shutil.which(str(explicit)):
            found = Path(which)
    else:
        for folder in (
            _PROJECT_ROOT / "node_modules" / ".bin",
            Path.cwd() / "node_modules" / ".bin",
        ):
            looked.append(str(folder))
            for name in ("azurite-blob", "azurite"):
                if (folder / name).is_file():
                    found = folder / name
                    break
            if found:
                break
        if found is None:
            looked.append("PATH")
            for name in ("azurite-blob", "azurite"):
                if which := shutil.which(name):
                    found = Path(which)
                    break
    if found is None:
        raise AzuriteNotFoundError(
            "Azurite (the Azure Storage emulator, npm package 'azurite') was not found; looked "
            f"in: {', '.join(looked)}. Install it with `npm ci` in the azhpc project folder (or "
            f"`./dev test`, which does that), or `npm install -g azurite@{AZURITE_VERSION}`, or "
            "set AZHPC_AZURITE to its path."
        )
    if found.name == "azurite" and (found.parent / "azurite-blob").is_file():
        found = found.parent / "azurite-blob"
    if _is_node_script(found) and shutil.which("node") is None:
        raise AzuriteNotFoundError(
            f"Azurite is installed ({found}) but Node.js is not on PATH; install Node.js >= 18"
        )
    command = [str(found)]
    if found.name.startswith("azurite") and found.name != "azurite-blob":
        # The all-services binary also starts Queue and Table: keep them off fixed ports.
        command += ["--queueHost", "127.0.0.1", "--queuePort", "0"]
        command += ["--tableHost", "127.0.0.1", "--tablePort", "0"]
    return command


def _is_node_script(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b"node" in f.readline()
    except OSError:
        return False


class Azurite:
    """Azurite's Blob service on 127.0.0.1, on a free port, in memory.

    A context manager; also ``start()`` / ``stop()``. Stopped at interpreter exit and when this
    process dies. The account is Azurite's well-known development account.

    Parameters
    ----------
    executable
        Path to ``azurite`` / ``azurite-blob``; default: see :func:`find_azurite`.
    host
        Loopback address to listen on.
    port
        Port; 0 (default) lets the system pick a free one.
    start_timeout
        Seconds to wait for Azurite to answer before giving up.
    certificates
        :class:`~azhpc.emulator.certs.TestCertificates`: serve HTTPS with its server
        certificate and accept Microsoft Entra ID bearer tokens (``--oauth basic``: issuer,
        audience and lifetime are checked, not the signature). Clients must trust its CA.

    Attributes
    ----------
    account_name : str
        ``devstoreaccount1``.
    """

    account_name = DEV_ACCOUNT_NAME

    def __init__(
        self,
        *,
        executable: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 60.0,
        certificates: Any = None,
    ) -> None:
        self.executable = executable
        self.certificates = certificates
        self.host = host
        self.requested_port = port
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._listening = threading.Event()
        self._workspace: str | None = None
        self._attached = False
        self._lock = threading.Lock()
        self._command: list[str] = []

    def __repr__(self) -> str:
        state = f"listening on {self.blob_endpoint}" if self.running else "stopped"
        return f"<azhpc.emulator.Azurite {state}>"

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @classmethod
    def attach(cls, port: int, *, host: str = "127.0.0.1") -> Azurite:
        """A handle on an Azurite that another process runs (``azhpc emulator start``):
        ``stop()`` leaves it running."""
        handle = cls(host=host)
        handle.port = port
        handle._attached = True
        return handle

    # -- what clients need ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the emulator process is alive (always, for an attached handle)."""
        if self._attached:
            return True
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The guard process's id (also the process group of Azurite), or ``None``."""
        return self._process.pid if self._process is not None else None

    @property
    def blob_endpoint(self) -> str:
        """``http://127.0.0.1:PORT/devstoreaccount1`` (``https://`` with certificates)."""
        if self.port is None:
            raise AzhpcError("Azurite is not running; call start() first")
        return f"{self.scheme}://{self.host}:{self.port}/{self.account_name}"

    @property
    def scheme(self) -> str:
        """``https`` with certificates (and OAuth), else ``http``."""
        return "https" if self.certificates is not None else "http"

    @property
    def connection_string(self) -> str:
        """A connection string for this emulator (it holds the dev key: don't print it)."""
        return self.connection_string_with_key(_DEV_ACCOUNT_KEY)

    def connection_string_with_key(self, account_key: str) -> str:
        """The connection string with another account key (tests of bad credentials use this)."""
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={self.account_name};"
            f"AccountKey={account_key};BlobEndpoint={self.blob_endpoint};"
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Azurite:
        """Start Azurite and wait until it answers. Idempotent while running.

        Returns
        -------
        Azurite
            ``self``.

        Raises
        ------
        AzuriteNotFoundError
            Azurite is not installed (the message says how to install it).
        AzuriteStartError
            It did not answer within ``start_timeout`` seconds, or exited.
        """
        with self._lock:
            if self.running:
                return self
            command = find_azurite(self.executable)
            command += [
                "--blobHost", self.host,
                "--blobPort", str(self.requested_port),
                "--skipApiVersionCheck",
                "--inMemoryPersistence",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ]  # fmt: skip
            if self.certificates is not None:
                command += [
                    "--cert", str(self.certificates.cert_file),
                    "--key", str(self.certificates.key_file),
                    "--oauth", "basic",
                ]  # fmt: skip
            self._command = command
            # Azurite refuses --location with in-memory persistence; the workspace is its cwd.
            self._workspace = tempfile.mkdtemp(prefix="azhpc-azurite-")
            self._output.clear()
            self._listening.clear()
            self.port = None
            if os.name == "posix":
                argv = [sys.executable, "-I", "-S", "-c", _GUARD, self._workspace, *command]
                extra: dict = {"start_new_session": True}
            else:  # pragma: no cover - Windows: no process groups to reap; terminate on stop
                argv = command
                extra = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self._workspace,
                **extra,
            )
            self._reader = threading.Thread(
                target=self._read_output, name="azhpc-azurite-output", daemon=True
            )
            self._reader.start()
            at_exit.release_at_exit(self, "stop")
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_output(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._output.append(line)
            match = _LISTENING.search(line)
            if match and not self._listening.is_set():
                port = match.group(1).rstrip("/").rsplit(":", 1)[-1]
                if port.isdigit():
                    self.port = int(port)
                    self._listening.set()
        self._listening.set()  # the process ended: wake the waiter

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        # Poll the process too: Azurite exiting at start-up is an answer, not a reason to wait.
        while not self._listening.wait(0.05):
            if self._exited() or time.monotonic() > deadline:
                break
        process = self._process
        if self.port is None and process is not None and self._listening.is_set():
            # Its output ended without a port: it is exiting, but its pipe closes before the
            # kernel lets it be reaped; wait for that, to report it as the exit it is.
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.port is None or self._exited():
            if self._exited():
                raise AzuriteStartError(self._failure("exited"))
            raise AzuriteStartError(self._failure("did not report a listening port"))
        while True:
            try:
                connection: http.client.HTTPConnection
                if self.certificates is not None:
                    context = ssl.create_default_context(cafile=str(self.certificates.ca_file))
                    connection = http.client.HTTPSConnection(
                        self.host, self.port, timeout=2, context=context
                    )
                else:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
                try:
                    connection.request("GET", f"/{self.account_name}?comp=list")
                    connection.getresponse().read()
                finally:
                    connection.close()
                return
            except OSError:
                if self._exited():
                    raise AzuriteStartError(self._failure("exited")) from None
                if time.monotonic() > deadline:
                    raise AzuriteStartError(self._failure("did not answer")) from None
                time.sleep(0.05)

    def _exited(self) -> bool:
        process = self._process
        return process is not None and process.poll() is not None

    def _failure(self, what: str) -> str:
        process = self._process
        if what == "exited" and process is not None and process.returncode is not None:
            if self._reader is not None:
                self._reader.join(timeout=2)  # the last lines it printed
            code = process.returncode
            when = f"at start-up with code {code}" + (
                f" (signal {code - 128})" if code > 128 else ""
            )
        else:
            when = f"within {self.start_timeout:g} s"
        tail = "\n".join(list(self._output)[-20:]) or "(no output)"
        command = " ".join(self._command[:1]) or "azurite"
        return (
            f"Azurite {what} {when} (command: {command}); check that this command starts "
            f"Azurite (AZHPC_AZURITE, or `npm ci` in the azhpc project folder). Its output:\n{tail}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite and every process it started; drop its (in-memory) data. Idempotent."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            at_exit.forget(self)
            try:
                if process.stdin is not None:
                    process.stdin.close()  # the guard's cue: terminate Azurite and the group
            except OSError:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            if os.name == "posix":
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    pass
            else:  # pragma: no cover
                process.kill()
            process.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
            if self._workspace is not None:
                shutil.rmtree(self._workspace, ignore_errors=True)
                self._workspace = None
            self.port = None
