"""Durable jobs: payloads, a manifest and outcomes kept in a lake folder.

A :class:`JobStore` keeps, under one folder of any fsspec filesystem (a session's: ``/.azhpc``
in its lake's :class:`~azhpc.lake.RootedFileSystem`)::

    payloads/<sha256>                      content-addressed payloads: functions, inputs,
                                           shared inputs, gather functions (written once)
    jobs/<job_id>/manifest.json            what the job is: its tasks and their payloads
    jobs/<job_id>/outcomes/<task_id>       each finished task's outcome
    jobs/<job_id>/logs/<task_id>/          stdout/stderr of a Batch task that failed

The manifest is written after every payload it names, and each outcome is committed whole
(a temporary name renamed into place on file systems; a single upload, which object stores
only show once it is complete), so a reader never sees half a job or half a result. That is
what lets :func:`azhpc.attach` rebuild a job in a fresh process: it gathers the outcomes that
exist and runs only the tasks that have none.

The manifest and the outcomes the client writes are sealed with the job's own key, which
stays on this machine (:mod:`azhpc.core.signing`); the outcomes Batch nodes write are signed
with the node's own key, which never leaves the node (:mod:`azhpc.core.node_signing`);
payloads are checked against the hashes the sealed manifest names (and, on Batch nodes,
against the hashes the task definition names). Nothing read back from the lake is unpickled
before it passes those checks (docs/security.md).
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azhpc.core import node_signing
from azhpc.core.outcome import TaskOutcome
from azhpc.core.payload import Payload, decode, encode, payload_from_bytes, payload_to_bytes
from azhpc.core.signing import KeyRing, check_mac_hex, mac_hex, seal, unseal
from azhpc.core.spec import JobSpec, Placement, TaskSpec
from azhpc.core.worker import encode_outcome
from azhpc.errors import AzhpcError, IntegrityError, JobNotFoundError
from azhpc.version import __version__

if TYPE_CHECKING:
    from azhpc.core.job import JobEvents
    from azhpc.core.outcome import RemoteError

__all__ = ["JobManifest", "JobNotFoundError", "JobStore", "PersistingEvents"]

logger = logging.getLogger("azhpc")

MANIFEST_VERSION = 1
#: Protocols whose uploads become visible only once complete (no rename needed).
_OBJECT_STORES = frozenset({"abfs", "abfss", "az", "s3", "s3a", "gs", "gcs", "memory"})


@dataclass(frozen=True)
class JobManifest:
    """What a durable job is, as stored in ``manifest.json``."""

    job_id: str
    name: str
    created: float
    function: str
    gather: str
    shared: str | None
    retries: int
    tasks: tuple[tuple[str, int, str], ...]  # (task id, index, input digest)
    azhpc_version: str
    python: str
    #: The job's Batch placement (``run_on_pool``), as JSON, or ``None``.
    placement: dict[str, Any] | None = None

    def to_json(self, key: bytes) -> str:
        """The manifest as JSON text, with its HMAC under the job's ``key``."""
        body = self._body()
        return json.dumps({**body, "mac": mac_hex(key, _canonical(body))}, indent=1)

    def _body(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "job_id": self.job_id,
            "name": self.name,
            "created": self.created,
            "function": self.function,
            "gather": self.gather,
            "shared": self.shared,
            "retries": self.retries,
            "tasks": [list(t) for t in self.tasks],
            "azhpc_version": self.azhpc_version,
            "python": self.python,
        } | ({"placement": self.placement} if self.placement is not None else {})

    @classmethod
    def from_json(cls, text: str, keys: KeyRing) -> JobManifest:
        """Read a manifest written by :meth:`to_json`, checking its HMAC."""
        raw = json.loads(text)
        mac = raw.pop("mac", "")
        job_id = str(raw.get("job_id"))
        check_mac_hex(keys.key(job_id), _canonical(raw), mac, what=f"the manifest of {job_id}")
        if raw.get("version") != MANIFEST_VERSION:
            raise AzhpcError(
                f"job manifest version {raw.get('version')!r} is not one this azhpc reads "
                f"({MANIFEST_VERSION}); attach with the azhpc version that ran the job "
                f"({raw.get('azhpc_version', 'unknown')})"
            )
        return cls(
            job_id=raw["job_id"],
            name=raw["name"],
            created=raw["created"],
            function=raw["function"],
            gather=raw["gather"],
            shared=raw["shared"],
            retries=raw["retries"],
            tasks=tuple((t[0], int(t[1]), t[2]) for t in raw["tasks"]),
            azhpc_version=raw["azhpc_version"],
            python=raw["python"],
            placement=raw.get("placement"),
        )


def _is_object_store(fs: Any) -> bool:
    """Whether uploads to ``fs`` appear whole (an object store, perhaps under a ``dir`` root)."""
    from fsspec.implementations.dirfs import DirFileSystem

    while isinstance(fs, DirFileSystem):  # the lake's RootedFileSystem, for one
        fs = fs.fs
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return bool(_OBJECT_STORES & set(protocols))


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class JobStore:
    """Durable jobs under ``root`` on the fsspec filesystem ``fs``.

    Parameters
    ----------
    fs
        Any fsspec filesystem; a session's is its lake's
        :class:`~azhpc.lake.RootedFileSystem` (a folder, Azurite or ADLS, in lake paths).
    root
        The folder for azhpc's jobs and payloads on ``fs`` (a session's: ``/.azhpc``).
    keys
        Where the per-job keys are kept on this machine (default: :class:`KeyRing`).
    """

    def __init__(self, fs: Any, root: str, *, keys: KeyRing | None = None) -> None:
        self.fs = fs
        self.keys = keys or KeyRing()
        self.root = root.rstrip("/")
        self._object_store = _is_object_store(fs)
        self._manifests: dict[str, JobManifest] = {}
        self._stored: set[str] = set()  # digests known to be in the store
        #: Who can vouch for a Batch node's key: each Batch backend on this store adds a
        #: function that, given a node id, learns the key of that node of its pools through
        #: the Batch API (into :attr:`keys`) and says whether it found the node.
        self.node_key_sources: list[Callable[[str], bool]] = []

    def __repr__(self) -> str:
        return f"<JobStore {type(self.fs).__name__}:{self.root}>"

    # -- paths -----------------------------------------------------------------------------

    def _payload_path(self, digest: str) -> str:
        return f"{self.root}/payloads/{digest}"

    def _job_dir(self, job_id: str) -> str:
        return f"{self.root}/jobs/{job_id}"

    def _outcome_path(self, job_id: str, task_id: str) -> str:
        return f"{self._job_dir(job_id)}/outcomes/{task_id}"

    # -- writing ---------------------------------------------------------------------------

    def _commit(self, path: str, data: bytes) -> None:
        """Write ``data`` so that readers see all of it or nothing."""
        parent = path.rsplit("/", 1)[0]
        if self._object_store:
            self.fs.pipe_file(path, data)  # one upload: visible only once complete
            return
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.partial-{secrets.token_hex(4)}"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        except BaseException:
            # A full disk, say: what was written of the temporary file would keep it full.
            try:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            except Exception:  # the write's own error is the one to report
                logger.warning("could not remove %s after a failed write", tmp)
            raise

    def put_payload(self, payload: Payload) -> str:
        """Store ``payload`` under its content hash (once); return the hash."""
        digest = payload.digest()
        if digest in self._stored:
            return digest
        path = self._payload_path(digest)
        if not self.fs.exists(path):
            self._commit(path, payload_to_bytes(payload))
        self._stored.add(digest)
        return digest

    def _put_payloads(self, payloads: list[Payload]) -> list[str]:
        """Store many payloads (once each); on object stores, uploaded concurrently."""
        digests = [p.digest() for p in payloads]
        if not self._object_store:
            return [self.put_payload(p) for p in payloads]
        new = {
            self._payload_path(d): p
            for d, p in zip(digests, payloads, strict=True)
            if d not in self._stored
        }
        if new:
            # Content-addressed: uploading a payload that is there already rewrites the same
            # bytes, which is cheaper than asking first for thousands of small ones.
            self.fs.pipe({path: payload_to_bytes(p) for path, p in new.items()})
            self._stored.update(digests)
        return digests

    def save_job(self, spec: JobSpec, gather: Callable[[list[Any]], Any]) -> JobManifest:
        """Store every payload of ``spec`` and its gather function, then the manifest."""
        digests = self._put_payloads([t.input for t in spec.tasks])
        tasks = tuple((t.task_id, t.index, d) for t, d in zip(spec.tasks, digests, strict=True))
        manifest = JobManifest(
            job_id=spec.job_id,
            name=spec.name,
            created=time.time(),
            function=self.put_payload(spec.function),
            gather=self.put_payload(encode(gather, what="the job's gather function")),
            shared=None if spec.shared is None else self.put_payload(spec.shared),
            retries=spec.retries,
            tasks=tasks,
            azhpc_version=__version__,
            python=".".join(map(str, sys.version_info[:3])),
            placement=None if spec.placement is None else spec.placement.to_json(),
        )
        key = self.keys.new_key(spec.job_id)
        self._commit(f"{self._job_dir(spec.job_id)}/manifest.json", manifest.to_json(key).encode())
        self._manifests[spec.job_id] = manifest
        return manifest

    def save_outcome(self, job_id: str, task_id: str, outcome: TaskOutcome) -> None:
        """Store a finished task's outcome, sealed with the job's key, whole or not at all."""
        data = payload_to_bytes(encode_outcome(outcome))
        self._commit(self._outcome_path(job_id, task_id), seal(self.keys.key(job_id), data))

    # -- reading ---------------------------------------------------------------------------

    def job_ids(self) -> list[str]:
        """Ids of the durable jobs in the store, oldest first by id."""
        folder = f"{self.root}/jobs"
        if not self.fs.exists(folder):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))

    def load_manifest(self, job_id: str) -> JobManifest:
        """The manifest of ``job_id``."""
        path = f"{self._job_dir(job_id)}/manifest.json"
        try:
            text = self.fs.cat_file(path).decode()
        except FileNotFoundError:
            known = self.job_ids()
            hint = f"; jobs here: {', '.join(known[-5:])}" if known else "; there are none"
            raise JobNotFoundError(
                f"no durable job {job_id!r} in {self!r}{hint}. Jobs are kept only by sessions "
                "with durable jobs on (azhpc.connect(..., durable=True))."
            ) from None
        manifest = JobManifest.from_json(text, self.keys)
        self._manifests[job_id] = manifest
        return manifest

    def manifest(self, job_id: str) -> JobManifest:
        """The manifest of ``job_id``, from memory if this store saved or loaded it."""
        return self._manifests.get(job_id) or self.load_manifest(job_id)

    def read_outcome(self, job_id: str, task_id: str) -> TaskOutcome | None:
        """The stored outcome of one task, its seal checked; ``None`` if there is none."""
        what = f"the outcome of {task_id} of {job_id}"
        try:
            sealed = self.fs.cat_file(self._outcome_path(job_id, task_id))
        except FileNotFoundError:
            return None
        data = self._open_outcome(job_id, task_id, sealed, what=what)
        return decode(payload_from_bytes(data, what=what))

    def _open_outcome(self, job_id: str, task_id: str, blob: bytes, *, what: str) -> bytes:
        """An outcome's data, checked: sealed by this client (local backends), or signed by a
        Batch node of this client's pools (:mod:`~azhpc.core.node_signing`)."""
        if blob.startswith(node_signing.MAGIC):
            try:
                return node_signing.open_outcome(blob, job_id, task_id, self._trusts, what=what)
            except IntegrityError:
                try:  # a seal that happens to begin with the same four bytes
                    return unseal(self.keys.key(job_id), blob, what=what)
                except IntegrityError:
                    pass
                raise
        return unseal(self.keys.key(job_id), blob, what=what)

    def _trusts(self, node_id: str, public: bytes) -> bool:
        """Whether ``public`` is the key of a node of this client's pools (learning the key
        of ``node_id`` through Batch if it is not known yet)."""
        if self.keys.trusts_node_key(public):
            return True
        for learn in list(self.node_key_sources):
            if learn(node_id) and self.keys.trusts_node_key(public):
                return True
        return False

    def read_log(self, job_id: str, task_id: str, name: str) -> bytes | None:
        """A log file a Batch task left (``stderr.txt``, ``stdout.txt``), or ``None``."""
        try:
            return self.fs.cat_file(f"{self._job_dir(job_id)}/logs/{task_id}/{name}")
        except FileNotFoundError:
            return None

    def load_payload(self, digest: str) -> Payload:
        """A stored payload, checked against its content hash."""
        data = self.fs.cat_file(self._payload_path(digest))
        payload = payload_from_bytes(data, what=f"payload {digest[:12]}")
        if payload.digest() != digest:
            raise AzhpcError(
                f"payload {digest[:12]}... in {self!r} does not match its content hash: it was "
                "changed or damaged after it was written; run the job again"
            )
        return payload

    def finished_outcomes(self, job_id: str) -> dict[str, TaskOutcome]:
        """The successful outcomes stored so far for ``job_id``, by task id."""
        folder = f"{self._job_dir(job_id)}/outcomes"
        self.fs.invalidate_cache(folder)  # nodes write here: a cached listing would be stale
        if not self.fs.exists(folder):
            return {}
        found = {}
        for path in self.fs.ls(folder, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("."):
                continue  # a write in progress
            what = f"the outcome of {name} of {job_id}"
            data = self._open_outcome(job_id, name, self.fs.cat_file(path), what=what)
            outcome = decode(payload_from_bytes(data, what=what))
            if outcome.ok:  # a failure (or a failed attempt a Batch retry follows) runs again
                found[name] = outcome
        return found

    def rebuild(
        self, manifest: JobManifest, task_ids: set[str]
    ) -> tuple[JobSpec, Callable[[list[Any]], Any]]:
        """The spec of ``manifest`` with only ``task_ids`` runnable, and its gather function."""
        tasks = tuple(
            TaskSpec(task_id, index, self.load_payload(digest))
            for task_id, index, digest in manifest.tasks
            if task_id in task_ids
        )
        spec = JobSpec(
            job_id=manifest.job_id,
            name=manifest.name,
            function=self.load_payload(manifest.function),
            tasks=tasks,
            retries=manifest.retries,
            shared=None if manifest.shared is None else self.load_payload(manifest.shared),
            placement=None
            if manifest.placement is None
            else Placement.from_json(manifest.placement),
        )
        return spec, decode(self.load_payload(manifest.gather))


class PersistingEvents:
    """Passes a backend's task events on to a job, storing each finished outcome first."""

    def __init__(self, job: JobEvents, store: JobStore, job_id: str) -> None:
        self._job = job
        self._store = store
        self._job_id = job_id

    def task_preparing(self, task_id: str, *, node: str) -> None:
        self._job.task_preparing(task_id, node=node)

    def task_running(self, task_id: str, *, node: str) -> None:
        self._job.task_running(task_id, node=node)

    def task_retrying(self, task_id: str, *, error: RemoteError, requeue: bool = False) -> None:
        self._job.task_retrying(task_id, error=error, requeue=requeue)

    def job_failed(self, error: BaseException) -> None:
        self._job.job_failed(error)

    def task_completed(self, task_id: str, outcome: TaskOutcome) -> None:
        if outcome.ok:
            # Only successes are kept: attach() runs a failed task again.
            try:
                self._store.save_outcome(self._job_id, task_id, outcome)
            except Exception as exc:  # the result is still good here; only durability is lost
                # The exception's text may hold a storage URL with a SAS token: not shown.
                logger.warning(
                    "could not store the outcome of %s of job %s in the lake (%s); "
                    "attach() would run that task again",
                    task_id,
                    self._job_id,
                    type(exc).__name__,
                )
        self._job.task_completed(task_id, outcome)
