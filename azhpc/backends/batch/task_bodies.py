"""The REST body of each task of a Batch job (:class:`TaskBodies`).

A task reads its function, input and shared payloads from the lake through read-only SAS URLs
(ResourceFiles), runs ``python -m azhpc.worker batch`` with the interpreter the pool's start
task recorded, and its OutputFiles upload the sealed outcome when it completes (and stdout and
stderr when it fails) through a write-only container SAS. A job's
:class:`~azhpc.core.spec.Placement` (``run_on_pool``) adds node affinity, a multi-instance
setting and the application archive.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.pool_body import MPI_USER
from azhpc.core.spec import APP_ARCHIVE
from azhpc.core.worker import BATCH_FILES, PAYLOADS_VARIABLE, RETRIES_VARIABLE, payload_digests

if TYPE_CHECKING:
    from azhpc.backends.batch.lifecycle import BatchPool
    from azhpc.core.spec import JobSpec, TaskSpec
    from azhpc.lake.sas import SasSigner
    from azhpc.staging import JobManifest, JobStore

__all__ = ["TASK_COMMAND", "TaskBodies"]

#: Every azhpc task's command line: the worker, with the pool's recorded interpreter.
TASK_COMMAND = (
    "/bin/bash -c 'exec \"$AZ_BATCH_NODE_SHARED_DIR/azhpc/env/bin/python\" -m azhpc.worker batch'"
)
#: How long the OutputFiles' container SAS URL is reused before a new one is signed.
CONTAINER_URL_REUSE = dt.timedelta(hours=1)


class TaskBodies:
    """Builds task bodies (``BatchTaskCreateOptions`` as JSON) for jobs of one session.

    Parameters
    ----------
    signer
        Signs the SAS URLs of the lake the nodes read and write.
    store
        The session's job store (payloads, outcomes, logs).
    pool
        The pool the tasks run on (its slots per node, for tasks pinned to a node).
    """

    def __init__(self, signer: SasSigner, store: JobStore, pool: BatchPool | None) -> None:
        self.signer = signer
        self.store = store
        self.pool = pool
        self._container_url: tuple[str, dt.datetime] | None = None

    def body(
        self, spec: JobSpec, manifest: JobManifest, task: TaskSpec, digest: str
    ) -> dict[str, Any]:
        """The body of ``task`` of ``spec``, whose input payload is ``digest``."""
        store_prefix = self.blob_name(self.store.root)
        resource_files = [
            {
                "httpUrl": self.signer.blob_url(f"{store_prefix}/payloads/{payload}"),
                "filePath": BATCH_FILES[name],
            }
            for name, payload in (
                ("function", manifest.function),
                ("input", digest),
                ("shared", manifest.shared),
            )
            if payload is not None
        ]
        container = self._upload_container()
        job_folder = f"{store_prefix}/jobs/{spec.job_id}"

        def output(pattern: str, path: str, condition: str) -> dict[str, Any]:
            return {
                "filePattern": pattern,
                "destination": {"container": {"containerUrl": container, "path": path}},
                "uploadOptions": {"uploadCondition": condition},
            }

        task_id = task.task_id
        digests = {"function": manifest.function, "input": digest}
        if manifest.shared is not None:
            digests["shared"] = manifest.shared
        body = {
            "id": task_id,
            "commandLine": TASK_COMMAND,
            "resourceFiles": resource_files,
            "outputFiles": [
                output(
                    BATCH_FILES["outcome"], f"{job_folder}/outcomes/{task_id}", "taskcompletion"
                ),
                output("../std*.txt", f"{job_folder}/logs/{task_id}", "taskfailure"),
            ],
            # The worker runs a function that raised again itself (retries); Batch retries
            # a worker that died (killed, out of memory), as the local backend does.
            "constraints": {"maxTaskRetryCount": spec.max_worker_losses},
            "environmentSettings": [
                {"name": RETRIES_VARIABLE, "value": str(spec.retries)},
                # What the node checks each download against before unpickling it: the
                # hashes travel here, in the task's definition, not in the lake.
                {"name": PAYLOADS_VARIABLE, "value": payload_digests(digests)},
            ],
        }
        if spec.placement is not None:
            self._place(body, spec, task.index)
        return body

    def _place(self, body: dict[str, Any], spec: JobSpec, index: int) -> None:
        """Apply a job's :class:`~azhpc.core.spec.Placement` to the body of its task ``index``."""

        placement = spec.placement
        assert placement is not None
        app = None
        if placement.files is not None:
            app = {
                "httpUrl": self.signer.blob_url(self.blob_name(placement.files)),
                "filePath": APP_ARCHIVE,
            }
        if placement.instances > 1:
            settings: dict[str, Any] = {"numberOfInstances": placement.instances}
            if placement.coordination:
                settings["coordinationCommandLine"] = placement.coordination
            if app is not None:
                settings["commonResourceFiles"] = [app]
            body["multiInstanceSettings"] = settings
            # As the pool's MPI account, which Batch gives SSH between the nodes (pool_body).
            body["userIdentity"] = {"username": MPI_USER}
            return
        if app is not None:
            body["resourceFiles"].append(app)
        if placement.affinity:
            body["affinityInfo"] = {"affinityId": placement.affinity[index]}
            body["requiredSlots"] = self.pool.slots_per_node if self.pool is not None else 1

    def _upload_container(self) -> str:
        """The write-only container SAS URL for OutputFiles (signed once an hour)."""
        now = dt.datetime.now(dt.UTC)
        cached = self._container_url
        if cached is None or now - cached[1] > CONTAINER_URL_REUSE:
            cached = (self.signer.container_url(write=True), now)
            self._container_url = cached
        return cached[0]

    def blob_name(self, fs_path: str) -> str:
        """A path of the lake's filesystem as a blob name in its container."""
        return fs_path.lstrip("/")  # a lake path without its leading / is a blob name
