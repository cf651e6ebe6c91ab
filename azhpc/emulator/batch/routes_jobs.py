"""Jobs, tasks and task files: ``/jobs``, ``/jobs/{jobId}/tasks``, ``.../files/{filePath}``."""

from __future__ import annotations

import uuid
from email.utils import format_datetime
from typing import Any

from azhpc.emulator.batch import odata
from azhpc.emulator.batch.model import (
    ApiError,
    Job,
    JobState,
    Pool,
    Task,
    TaskState,
    rfc3339,
    utcnow,
)
from azhpc.emulator.batch.routes_pools import _check_id, _require, add_pool
from azhpc.emulator.batch.server import Request, Response, Route, Service, resource_headers

__all__ = ["ROUTES"]

#: The service's limit on tasks per add-collection request.
MAX_TASKS_PER_COLLECTION = 100
#: ``BatchAllTasksCompleteMode`` (BatchService.json, 2025-06-01).
ALL_TASKS_COMPLETE_MODES = ("noaction", "terminatejob")


def _all_tasks_complete_mode(body: dict[str, Any]) -> str | None:
    """``onAllTasksComplete`` of a job body, checked against the spec's enum."""
    mode = body.get("onAllTasksComplete")
    if mode is not None and mode not in ALL_TASKS_COMPLETE_MODES:
        raise ApiError(
            400,
            "InvalidPropertyValue",
            f"onAllTasksComplete must be one of {', '.join(ALL_TASKS_COMPLETE_MODES)}.",
            values=[("PropertyName", "onAllTasksComplete"), ("PropertyValue", str(mode))],
        )
    return mode


def _not_deleting(job: Job) -> None:
    """409 for an update of a job being deleted. Job_Delete (BatchService.json, 2025-06-01):
    "All update operations on a Job that is in deleting state will fail with status code 409
    (Conflict), with additional information indicating that the Job is being deleted."."""
    if job.state == JobState.DELETING:
        raise ApiError(409, "JobBeingDeleted", "The specified job is being deleted.")


def create_job(service: Service, request: Request) -> Response:
    """``POST /jobs`` (Job_Add): on an existing pool (``poolInfo.poolId``) or on an auto pool
    (``poolInfo.autoPoolSpecification`` with ``poolLifetimeOption`` ``job``), which the service
    creates with the job and deletes when the job ends (unless ``keepAlive``)."""
    body = request.json()
    _require(body, "id", "poolInfo")
    _check_id(body["id"], "job")
    auto = body["poolInfo"].get("autoPoolSpecification")
    if not body["poolInfo"].get("poolId") and not auto:
        raise ApiError(
            400,
            "MissingRequiredProperty",
            "poolInfo needs poolId or autoPoolSpecification.",
        )
    _all_tasks_complete_mode(body)
    with service.store.lock:
        if body["id"] in service.store.jobs:
            raise ApiError(409, "JobExists", "The specified job already exists.")
        job = Job(id=body["id"], spec=body)
        if auto:
            job.auto_pool_id = _create_auto_pool(service, auto).id
        service.store.jobs[job.id] = job
        # BatchJobCreateOptions.onAllTasksComplete (BatchService.json, 2025-06-01): "Note that
        # if a Job contains no Tasks, then all Tasks are considered complete." A terminatejob
        # job created without tasks therefore ends at once, before any task can be added.
        service.engine._maybe_complete_job(job)
        return Response(201, headers=resource_headers(job, f"{service.base_url}/jobs/{job.id}"))


def _create_auto_pool(service: Service, auto: dict[str, Any]) -> Pool:
    """The pool of an ``autoPoolSpecification``: id ``<autoPoolIdPrefix>_<guid>``."""
    _require(auto, "poolLifetimeOption", "pool")
    if str(auto["poolLifetimeOption"]).lower() != "job":
        raise ApiError(
            400,
            "InvalidPropertyValue",
            "The emulator supports poolLifetimeOption 'job' only (no job schedules).",
        )
    prefix = str(auto.get("autoPoolIdPrefix") or "")
    if len(prefix) > 20:
        raise ApiError(
            400, "InvalidPropertyValue", "autoPoolIdPrefix may be at most 20 characters."
        )
    pool_id = f"{prefix}_{uuid.uuid4()}" if prefix else str(uuid.uuid4())
    _check_id(pool_id, "pool")
    return add_pool(service, {**auto["pool"], "id": pool_id})


def list_jobs(service: Service, request: Request) -> Response:
    """``GET /jobs`` (Job_List): ``$filter`` on the documented job properties only."""
    with service.store.lock:
        items = [(j.id, j.to_json(service.base_url)) for j in service.store.jobs.values()]
    url = f"{service.base_url}/jobs"
    return Response(200, odata.page(items, request.query, url, filterable=odata.FILTERABLE["jobs"]))


def get_job(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}`` (Job_Get)."""
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        body = odata.select(job.to_json(service.base_url), request.query.get("$select"))
        return Response(200, body, resource_headers(job))


def update_job(service: Service, request: Request) -> Response:
    """``PATCH /jobs/{jobId}`` (Job_Patch): merges priority, constraints, onAllTasksComplete...

    Switching ``onAllTasksComplete`` to ``terminatejob`` ends the job at once when all its tasks
    are already complete (or it has none); switching back is refused.
    """
    body = request.json()
    mode = _all_tasks_complete_mode(body)
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        _not_deleting(job)
        if mode == "noaction" and job.spec.get("onAllTasksComplete") == "terminatejob":
            # BatchJobUpdateOptions.onAllTasksComplete (BatchService.json, 2025-06-01): "You may
            # not change the value from terminatejob to noaction ... the request fails with an
            # 'invalid property value' error response; ... the HTTP status code is 400".
            raise ApiError(
                400,
                "InvalidPropertyValue",
                "onAllTasksComplete cannot be changed from terminatejob to noaction.",
                values=[("PropertyName", "onAllTasksComplete"), ("PropertyValue", mode)],
            )
        for key in ("priority", "maxParallelTasks", "constraints", "onAllTasksComplete",
                    "metadata", "allowTaskPreemption"):  # fmt: skip
            if key in body:
                job.spec[key] = body[key]
        job.touch()
        service.engine._maybe_complete_job(job)
        return Response(200, headers=resource_headers(job))


def terminate_job(service: Service, request: Request) -> Response:
    """``POST /jobs/{jobId}/terminate`` (Job_Terminate): ``terminating``, then ``completed``."""
    body = request.json()
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        if job.state in (JobState.COMPLETED, JobState.TERMINATING):
            raise ApiError(
                409, "JobCompleted", "The specified job is already in a completed state."
            )
        if job.state == JobState.DELETING:
            raise ApiError(409, "JobBeingDeleted", "The specified job is being deleted.")
        reason = body.get("terminateReason") or "UserTerminate"
        service.engine.end_job(job, delete=False, reason=reason)
        return Response(202, headers=resource_headers(job))


def delete_job(service: Service, request: Request) -> Response:
    """``DELETE /jobs/{jobId}`` (Job_Delete): ``deleting``, then gone with its tasks (running
    ones are killed); meanwhile updates of the job are refused (409 ``JobBeingDeleted``)."""
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        if job.state != JobState.DELETING:
            service.engine.end_job(job, delete=True)
        return Response(202)


def task_counts(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}/taskcounts`` (Job_GetTaskCounts)."""
    counts = dict.fromkeys(("active", "running", "completed", "succeeded", "failed"), 0)
    slots = dict(counts)
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        for task in job.tasks.values():
            state = task.state
            keys = ["active" if state in (TaskState.ACTIVE, TaskState.PREPARING) else state.value]
            if state == TaskState.COMPLETED:
                keys.append(
                    "succeeded" if task.execution_info.get("result") == "success" else "failed"
                )
            for key in keys:
                counts[key] += 1
                slots[key] += task.required_slots
    return Response(200, {"taskCounts": counts, "taskSlotCounts": slots})


def _new_task(job: Job, body: dict[str, Any]) -> Task:
    _require(body, "id", "commandLine")
    _check_id(body["id"], "task")
    if body.get("dependsOn"):
        raise ApiError(400, "InvalidPropertyValue", "dependsOn is not emulated.")
    settings = body.get("multiInstanceSettings")
    if settings is not None:
        _require(settings, "coordinationCommandLine")
        instances = settings.get("numberOfInstances", 1)
        if not isinstance(instances, int) or instances < 1:
            raise ApiError(
                400,
                "InvalidPropertyValue",
                "multiInstanceSettings.numberOfInstances must be a positive integer",
            )
    return Task(id=body["id"], spec=body, job_id=job.id)


def _active_job(service: Service, job_id: str) -> Job:
    job = service.store.job(job_id)
    _not_deleting(job)
    if job.state == JobState.COMPLETED:
        raise ApiError(409, "JobCompleted", "The specified job is already in a completed state.")
    if job.state != JobState.ACTIVE:
        raise ApiError(409, "JobNotActive", f"The specified job is {job.state.value}.")
    return job


def _add(service: Service, job: Job, task: Task) -> None:
    job.tasks[task.id] = task
    job.queue.append(task.id)
    service.store.changed.notify_all()


def create_task(service: Service, request: Request) -> Response:
    """``POST /jobs/{jobId}/tasks`` (Task_Add)."""
    body = request.json()
    with service.store.lock:
        job = _active_job(service, request.args["jobId"])
        task = _new_task(job, body)
        if task.id in job.tasks:
            raise ApiError(409, "TaskExists", "The specified task already exists.")
        _add(service, job, task)
        url = f"{service.base_url}/jobs/{job.id}/tasks/{task.id}"
        return Response(201, headers=resource_headers(task, url))


def create_task_collection(service: Service, request: Request) -> Response:
    """``POST /jobs/{jobId}/addtaskcollection`` (Task_AddCollection): at most 100 tasks."""
    body = request.json()
    values = body.get("value")
    if not isinstance(values, list) or not values:
        raise ApiError(400, "MissingRequiredProperty", "value: the list of tasks is required")
    if len(values) > MAX_TASKS_PER_COLLECTION:
        raise ApiError(
            400,
            "InvalidPropertyValue",
            f"A task collection holds at most {MAX_TASKS_PER_COLLECTION} tasks, got {len(values)}.",
        )
    results: list[dict[str, Any]] = []
    with service.store.lock:
        job = _active_job(service, request.args["jobId"])
        for spec in values:
            task_id = str(spec.get("id", "")) if isinstance(spec, dict) else ""
            try:
                if not isinstance(spec, dict):
                    raise ApiError(400, "InvalidRequestBody", "each task must be an object")
                task = _new_task(job, spec)
                if task.id in job.tasks:
                    raise ApiError(409, "TaskExists", "The specified task already exists.")
            except ApiError as err:
                results.append(
                    {
                        "status": "clienterror",
                        "taskId": task_id,
                        "error": {
                            "code": err.code,
                            "message": {"lang": "en-US", "value": err.message},
                        },
                    }
                )
                continue
            _add(service, job, task)
            results.append(
                {
                    "status": "success",
                    "taskId": task.id,
                    "eTag": task.etag,
                    "lastModified": rfc3339(task.last_modified),
                    "location": f"{service.base_url}/jobs/{job.id}/tasks/{task.id}",
                }
            )
    return Response(200, {"value": results})


def list_tasks(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}/tasks`` (Task_List): ``$filter``, ``$select``, paging."""
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        items = [(t.id, t.to_json(service.base_url)) for t in job.tasks.values()]
    url = f"{service.base_url}/jobs/{request.args['jobId']}/tasks"
    return Response(
        200, odata.page(items, request.query, url, filterable=odata.FILTERABLE["tasks"])
    )


def get_task(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}/tasks/{taskId}`` (Task_Get)."""
    with service.store.lock:
        task = service.store.task(request.args["jobId"], request.args["taskId"])
        body = odata.select(task.to_json(service.base_url), request.query.get("$select"))
        return Response(200, body, resource_headers(task))


def delete_task(service: Service, request: Request) -> Response:
    """``DELETE /jobs/{jobId}/tasks/{taskId}`` (Task_Delete): a running one is killed."""
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        task = service.store.task(job.id, request.args["taskId"])
        _stop_attempt(service, job, task)
        del job.tasks[task.id]
        return Response(200)


def _stop_attempt(service: Service, job: Job, task: Task) -> None:
    attempt = task.attempt
    if attempt is None:
        return
    attempt.cancelled = True
    service.engine.kill_attempt(attempt)
    service.engine.release(attempt)
    task.attempt = None
    service.store.changed.notify_all()


def list_subtasks(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}/tasks/{taskId}/subtasksinfo`` (Task_ListSubtasks): a multi-instance
    task's subtasks, one per node (id 0: the primary); empty for other tasks."""
    with service.store.lock:
        task = service.store.task(request.args["jobId"], request.args["taskId"])
        return Response(200, {"value": [dict(s) for s in task.subtasks]})


def terminate_task(service: Service, request: Request) -> Response:
    """``POST /jobs/{jobId}/tasks/{taskId}/terminate`` (Task_Terminate): 204."""
    with service.store.lock:
        job = service.store.job(request.args["jobId"])
        task = service.store.task(job.id, request.args["taskId"])
        if task.state != TaskState.COMPLETED:
            _stop_attempt(service, job, task)
            task.execution_info.update(
                {
                    "endTime": rfc3339(utcnow()),
                    "result": "failure",
                    "failureInfo": {
                        "category": "usererror",
                        "code": "TaskEnded",
                        "message": "The task was terminated by the user",
                    },
                }
            )
            task.set_state(TaskState.COMPLETED)
            service.engine._maybe_complete_job(job)
        return Response(204)


def _file_in(folder: Any, relative: str) -> Any:
    """The file ``relative`` inside ``folder``; 404 if missing or outside it."""
    if folder is None:
        raise ApiError(404, "FileNotFound", "The specified file does not exist.")
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise ApiError(404, "FileNotFound", "The specified file does not exist.")
    return path


def _file_headers(service: Service, request: Request, path: Any) -> dict[str, str]:
    stat = path.stat()
    modified = utcnow().fromtimestamp(stat.st_mtime, tz=utcnow().tzinfo)
    return {
        "ocp-creation-time": format_datetime(modified, usegmt=True),
        "ocp-batch-file-isdirectory": "false",
        "ocp-batch-file-url": f"{service.base_url}{request.path}",
        "ocp-batch-file-mode": "0100644",
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Content-Length": str(stat.st_size),
    }


def file_response(service: Service, request: Request, folder: Any, *, body: bool) -> Response:
    """A file of ``folder`` (``filePath`` argument): its bytes (``ocp-range`` honoured) with
    Batch's file headers, or (``body=False``, for HEAD) the headers alone."""
    path = _file_in(folder, request.args["filePath"])
    headers = _file_headers(service, request, path)
    if not body:
        return Response(200, None, headers)
    data = path.read_bytes()
    byte_range = next((v for k, v in request.headers.items() if k.lower() == "ocp-range"), "")
    if byte_range.startswith("bytes="):
        start_text, _, end_text = byte_range[len("bytes=") :].partition("-")
        start = int(start_text or 0)
        end = int(end_text) + 1 if end_text else len(data)
        data = data[start:end]
    headers.pop("Content-Length")
    return Response(200, data, headers)


def file_items(folder: Any, request: Request, base: str) -> list[tuple[str, dict[str, Any]]]:
    """The ``NodeFile`` list items of ``folder`` (``recursive`` query honoured)."""
    items: list[tuple[str, dict[str, Any]]] = []
    if folder is None or not folder.is_dir():
        return items
    recursive = request.query.get("recursive", "false").lower() == "true"
    paths = folder.rglob("*") if recursive else folder.glob("*")
    for path in sorted(paths):
        name = path.relative_to(folder).as_posix()
        stat = path.stat()
        modified = utcnow().fromtimestamp(stat.st_mtime, tz=utcnow().tzinfo)
        items.append(
            (
                name,
                {
                    "name": name,
                    "url": f"{base}/{name}",
                    "isDirectory": path.is_dir(),
                    "properties": {
                        "creationTime": rfc3339(modified),
                        "lastModified": rfc3339(modified),
                        "contentLength": str(0 if path.is_dir() else stat.st_size),
                        "contentType": "application/octet-stream",
                        "fileMode": "0100644",
                    },
                },
            )
        )
    return items


def _task_folder(service: Service, request: Request) -> Any:
    with service.store.lock:
        return service.store.task(request.args["jobId"], request.args["taskId"]).task_dir


def download_task_file(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}/tasks/{taskId}/files/{filePath}`` (File_GetFromTask); ``ocp-range``."""
    return file_response(service, request, _task_folder(service, request), body=True)


def task_file_properties(service: Service, request: Request) -> Response:
    """``HEAD /jobs/{jobId}/tasks/{taskId}/files/{filePath}`` (File_GetPropertiesFromTask)."""
    return file_response(service, request, _task_folder(service, request), body=False)


def list_task_files(service: Service, request: Request) -> Response:
    """``GET /jobs/{jobId}/tasks/{taskId}/files`` (File_ListFromTask); ``recursive``."""
    url = f"{service.base_url}/jobs/{request.args['jobId']}/tasks/{request.args['taskId']}/files"
    items = file_items(_task_folder(service, request), request, url)
    return Response(
        200, odata.page(items, request.query, url, filterable=odata.FILTERABLE["files"])
    )


ROUTES = [
    Route("POST", "/jobs", "Job_Add", create_job),
    Route("GET", "/jobs", "Job_List", list_jobs),
    Route("GET", "/jobs/{jobId}", "Job_Get", get_job),
    Route("PATCH", "/jobs/{jobId}", "Job_Patch", update_job),
    Route("DELETE", "/jobs/{jobId}", "Job_Delete", delete_job),
    Route("POST", "/jobs/{jobId}/terminate", "Job_Terminate", terminate_job),
    Route("GET", "/jobs/{jobId}/taskcounts", "Job_GetTaskCounts", task_counts),
    Route("POST", "/jobs/{jobId}/tasks", "Task_Add", create_task),
    Route("GET", "/jobs/{jobId}/tasks", "Task_List", list_tasks),
    Route("POST", "/jobs/{jobId}/addtaskcollection", "Task_AddCollection", create_task_collection),
    Route("GET", "/jobs/{jobId}/tasks/{taskId}", "Task_Get", get_task),
    Route("GET", "/jobs/{jobId}/tasks/{taskId}/subtasksinfo", "Task_ListSubtasks", list_subtasks),
    Route("DELETE", "/jobs/{jobId}/tasks/{taskId}", "Task_Delete", delete_task),
    Route("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", "Task_Terminate", terminate_task),
    Route("GET", "/jobs/{jobId}/tasks/{taskId}/files", "File_ListFromTask", list_task_files),
    Route(
        "GET",
        "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
        "File_GetFromTask",
        download_task_file,
    ),
    Route(
        "HEAD",
        "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
        "File_GetPropertiesFromTask",
        task_file_properties,
    ),
]
