"""The Batch REST emulator, driven through the real ``azure-batch`` SDK."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from azhpc.emulator.batch import BatchEmulator
from tests.conftest import process_exists, wait_until

models = pytest.importorskip("azure.batch.models")


def _task(task_id: str, command: str, **options: Any) -> Any:
    return models.BatchTaskCreateOptions(id=task_id, command_line=command, **options)


def _all_completed(client: Any, job_id: str, total: int) -> Callable[[], bool]:
    return lambda: client.get_job_task_counts(job_id).task_counts.completed == total


def test_batch_emulator_import_is_lazy() -> None:
    code = (
        "import sys, azhpc.emulator.azurite; print(any('emulator.batch' in m for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_auth_wrong_key_is_401(batch_emulator: BatchEmulator) -> None:
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.exceptions import HttpResponseError

    other_key = BatchEmulator().account_key
    wrong = BatchClient(
        endpoint=batch_emulator.url,
        credential=AzureNamedKeyCredential(batch_emulator.account_name, other_key),
    )
    with pytest.raises(HttpResponseError) as info:
        list(wrong.list_pools())
    assert info.value.status_code == 401
    assert info.value.error.code == "AuthenticationFailed"


def test_pool_lifecycle_create_get_list_exists_resize_delete(client: Any, make_pool: Any) -> None:
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    make_pool("p1", nodes=2, slots=3, enable_inter_node_communication=True)
    pool = client.get_pool("p1")
    assert (pool.state, pool.allocation_state) == ("active", "steady")
    assert (pool.current_dedicated_nodes, pool.task_slots_per_node) == (2, 3)
    assert pool.enable_inter_node_communication is True
    assert pool.creation_time is not None and pool.etag
    assert [p.id for p in client.list_pools()] == ["p1"]
    assert client.pool_exists("p1") is True
    with pytest.raises(ResourceExistsError):
        client.create_pool(models.BatchPoolCreateOptions(id="p1", vm_size="standard_d2s_v3"))

    client.begin_resize_pool(
        "p1", models.BatchPoolResizeOptions(target_dedicated_nodes=3), polling_interval=0.05
    ).result()
    wait_until(lambda: [n.state for n in client.list_nodes("p1")] == ["idle"] * 3, timeout=10)
    client.begin_resize_pool(
        "p1", models.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.05
    ).result()
    assert client.get_pool("p1").current_dedicated_nodes == 1

    client.begin_delete_pool("p1", polling_interval=0.05).result()
    assert list(client.list_pools()) == []
    # SDK quirk: its exception policy turns the service's HEAD 404 into an exception.
    with pytest.raises(ResourceNotFoundError):
        client.pool_exists("p1")


def test_pool_autoscale_formula_sets_targets(client: Any) -> None:
    client.create_pool(
        models.BatchPoolCreateOptions(
            id="auto", vm_size="standard_d2s_v3", target_dedicated_nodes=0
        )
    )
    # not while the pool's first sizing is in progress (see the next test)
    wait_until(lambda: client.get_pool("auto").allocation_state == "steady", timeout=10)
    client.enable_pool_auto_scale(
        "auto",
        models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = max(2, $PendingTasks.GetSample(1));"
        ),
    )
    wait_until(lambda: client.get_pool("auto").current_dedicated_nodes == 2, timeout=10)
    pool = client.get_pool("auto")
    assert pool.enable_auto_scale and "TargetDedicatedNodes=2" in pool.auto_scale_run.results
    client.disable_pool_auto_scale("auto")
    assert client.get_pool("auto").enable_auto_scale is False


def test_start_task_failing_leaves_node_starttaskfailed(client: Any, make_pool: Any) -> None:
    client.create_pool(
        models.BatchPoolCreateOptions(
            id="bad",
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=1,
            start_task=models.BatchStartTask(command_line="echo broken >&2; exit 3"),
        )
    )
    wait_until(
        lambda: [n.state for n in client.list_nodes("bad")] == ["starttaskfailed"], timeout=10
    )
    info = next(iter(client.list_nodes("bad"))).start_task_info
    assert (info.exit_code, info.result, info.failure_info.code) == (
        3,
        "failure",
        "FailureExitCode",
    )


def test_start_task_injected_failure_then_healed(
    batch_emulator: BatchEmulator, client: Any, make_pool: Any
) -> None:
    make_pool("st", nodes=2, start_task=models.BatchStartTask(command_line="true"))
    batch_emulator.fail_start_task("st")
    wait_until(
        lambda: [n.state for n in client.list_nodes("st")] == ["starttaskfailed"] * 2, timeout=10
    )
    batch_emulator.fail_start_task("st", enabled=False)
    wait_until(lambda: [n.state for n in client.list_nodes("st")] == ["idle"] * 2, timeout=10)


def test_tasks_250_in_three_add_collections_with_exit_codes(
    batch_emulator: BatchEmulator, client: Any, make_pool: Any
) -> None:
    make_pool("p", nodes=2, slots=4)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    batch_emulator.reset_request_counts()
    tasks = [_task(f"t{i:03d}", f"echo $AZ_BATCH_TASK_ID; exit {i % 3}") for i in range(250)]
    result = client.create_tasks("j", tasks, max_concurrency=4)
    assert len(result.result_values) == 250
    assert {r.status for r in result.result_values} == {"success"}
    assert batch_emulator.request_counts()["Task_AddCollection"] <= 3
    wait_until(_all_completed(client, "j", 250), timeout=30, what="250 tasks completed")
    for task in client.list_tasks("j", select=["id", "executionInfo", "state"]):
        expected = int(task.id[1:]) % 3
        assert task.execution_info.exit_code == expected
        assert task.execution_info.result == ("success" if expected == 0 else "failure")
    counts = client.get_job_task_counts("j")
    assert (counts.task_counts.succeeded, counts.task_counts.failed) == (84, 166)
    assert counts.task_slot_counts.completed == 250


def test_tasks_list_filter_select_paging_returns_each_task_once(
    batch_emulator: BatchEmulator, client: Any, make_pool: Any
) -> None:
    make_pool("p", nodes=1, slots=2)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    client.create_tasks("j", [_task(f"t{i:02d}", "true") for i in range(23)])
    # Paging while tasks change state: each task at most once per listing.
    seen = [t.id for t in client.list_tasks("j", max_results=4)]
    assert sorted(seen) == [f"t{i:02d}" for i in range(23)]
    wait_until(_all_completed(client, "j", 23), timeout=20)
    batch_emulator.reset_request_counts()
    done = list(
        client.list_tasks("j", filter="state eq 'completed'", select=["id", "state"], max_results=5)
    )
    assert sorted(t.id for t in done) == [f"t{i:02d}" for i in range(23)]
    assert all(t.state == "completed" and t.command_line is None for t in done)
    assert batch_emulator.request_counts()["Task_List"] == 5
    assert list(client.list_tasks("j", filter="state eq 'active' or state eq 'running'")) == []
    recent = "state eq 'completed' and stateTransitionTime ge datetime'2000-01-01T00:00:00Z'"
    assert len(list(client.list_tasks("j", filter=recent))) == 23
    assert list(client.list_tasks("j", filter="executionInfo/exitCode ne 0")) == []
    assert sorted(t.id for t in client.list_tasks("j", filter="startswith(id, 't0')")) == [
        f"t{i:02d}" for i in range(10)
    ]


def _refusal(call: Callable[[], Any]) -> dict[str, Any]:
    """The Batch error body of a call the service refuses."""
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as info:
        call()
    return {"status": info.value.status_code, **info.value.response.json()}


@pytest.mark.parametrize(
    "refused",
    [
        "executionInfo/retryCount gt 0",  # not filterable (OData filters in Azure Batch)
        "executionInfo/requeueCount gt 0",
        "state ne 'completed'",  # List tasks: state takes eq only
        "not (state eq 'active')",  # conditions combine with and/or only
        "startswith(state, 'act')",  # startswith is for id
        "executionInfo/exitCode eq '0'",  # an Int property with a string literal
        "stateTransitionTime ge '2025-01-01'",  # a DateTime property without datetime'...'
        "state eq 'deleted'",  # not a task state
        "commandLine eq 'true'",
    ],
)
def test_task_list_filter_refuses_what_batch_does_not_document(
    client: Any, make_pool: Any, refused: str
) -> None:
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="none"))
    )
    body = _refusal(lambda: list(client.list_tasks("j", filter=refused)))
    assert (body["status"], body["code"]) == (400, "InvalidQueryParameterValue")
    values = {v["key"]: v["value"] for v in body["values"]}
    assert values["QueryParameterName"] == "$filter"
    assert values["QueryParameterValue"] == refused
    assert values["Reason"]


def test_pool_job_and_node_lists_filter_on_their_documented_properties(
    client: Any, make_pool: Any
) -> None:
    make_pool("p", nodes=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    assert [p.id for p in client.list_pools(filter="startswith(id, 'p') and state eq 'active'")]
    assert [j.id for j in client.list_jobs(filter="executionInfo/poolId eq 'p'")] == ["j"]
    assert [n.state for n in client.list_nodes("p", filter="state ne 'offline'")] == ["idle"]
    for call in (
        lambda: list(client.list_pools(filter="targetDedicatedNodes gt 0")),
        lambda: list(client.list_jobs(filter="poolInfo/poolId eq 'p'")),
        lambda: list(client.list_nodes("p", filter="id eq 'tvmps_0001_d'")),
    ):
        assert _refusal(call)["code"] == "InvalidQueryParameterValue"


def test_task_environment_and_stdout_via_download(client: Any, make_pool: Any) -> None:
    make_pool("p", nodes=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    command = (
        'echo "$AZ_BATCH_JOB_ID/$AZ_BATCH_TASK_ID/$AZ_BATCH_POOL_ID/$AZ_BATCH_NODE_ID/$GREETING";'
        " echo oops >&2;"
        ' test "$PWD" = "$AZ_BATCH_TASK_WORKING_DIR" && test -d "$AZ_BATCH_NODE_SHARED_DIR"'
        # the node's own temporary folder, as a real node has its own /tmp
        ' && test "$TMPDIR" = "$AZ_BATCH_NODE_ROOT_DIR/tmp" && test -d "$TMPDIR"'
    )
    client.create_task(
        "j",
        _task(
            "env",
            command,
            environment_settings=[models.EnvironmentSetting(name="GREETING", value="hello")],
        ),
    )
    wait_until(lambda: client.get_task("j", "env").state == "completed", timeout=10)
    task = client.get_task("j", "env")
    assert task.execution_info.exit_code == 0
    assert task.node_info.pool_id == "p"
    stdout = b"".join(client.download_task_file("j", "env", "stdout.txt")).decode()
    assert stdout == f"j/env/p/{task.node_info.node_id}/hello\n"
    assert b"".join(client.download_task_file("j", "env", "stderr.txt")) == b"oops\n"


def test_task_processes_carry_the_mark_of_the_test_run(client: Any, make_pool: Any) -> None:
    """A node's processes get an environment of their own, nothing of the emulator's: the
    end-of-run check (tests/leftovers.py) still finds them, by the node folders it names,
    which are in the run's temporary folder."""
    import tempfile
    from pathlib import Path

    from tests.leftovers import processes_left

    make_pool("p", nodes=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    client.create_task("j", _task("sleeper", "echo $$; exec sleep 60"))

    def pid() -> int | None:
        with contextlib.suppress(Exception):
            text = b"".join(client.download_task_file("j", "sleeper", "stdout.txt")).decode()
            return int(text) if text.strip() else None
        return None

    wait_until(lambda: pid() is not None, timeout=10, what="the task to start")
    sleeper = pid()
    environment = Path(f"/proc/{sleeper}/environ").read_bytes().split(b"\0")
    run = Path(tempfile.gettempdir())
    assert f"TMPDIR={run}".encode() not in environment  # not inherited from this process
    found = {p.pid: p.why for p in processes_left(run)}
    assert found.get(sleeper) == "environment"
    client.terminate_task("j", "sleeper")
    wait_until(lambda: not process_exists(sleeper), timeout=10, what="the task to end")


def test_task_retries_until_max_retry_count(client: Any, make_pool: Any) -> None:
    make_pool("p", nodes=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    # Fails twice, succeeds on the third try (a counter file on the node's shared folder).
    command = (
        'n=$(cat "$AZ_BATCH_NODE_SHARED_DIR/n" 2>/dev/null || echo 0); n=$((n+1));'
        ' echo $n > "$AZ_BATCH_NODE_SHARED_DIR/n"; test $n -ge 3'
    )
    constraints = models.BatchTaskConstraints(max_task_retry_count=2)
    client.create_task("j", _task("flaky", command, constraints=constraints))
    client.create_task("j", _task("hopeless", "exit 7", constraints=constraints))
    wait_until(_all_completed(client, "j", 2), timeout=10)
    flaky, hopeless = client.get_task("j", "flaky"), client.get_task("j", "hopeless")
    assert (flaky.execution_info.retry_count, flaky.execution_info.exit_code) == (2, 0)
    assert (hopeless.execution_info.retry_count, hopeless.execution_info.exit_code) == (2, 7)
    assert hopeless.execution_info.failure_info.code == "FailureExitCode"


def test_preempted_node_requeues_its_task_which_completes(
    batch_emulator: BatchEmulator, client: Any, make_pool: Any, tmp_path: Any
) -> None:
    make_pool("p", nodes=1, slots=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    gate = tmp_path / "go"
    # The first run waits for the gate (so it is surely running when preempted).
    client.create_task("j", _task("long", f"while [ ! -e {gate} ]; do sleep 0.02; done; echo ok"))
    wait_until(lambda: client.get_task("j", "long").state == "running", timeout=10)
    node_id = client.get_task("j", "long").node_info.node_id
    answer = batch_emulator.preempt("p", node_id)
    assert answer["requeued"] == ["long"]
    assert client.get_node("p", node_id).state == "preempted"
    task = client.get_task("j", "long")
    assert task.state == "active" and task.execution_info.requeue_count == 1
    gate.touch()
    wait_until(lambda: client.get_task("j", "long").state == "completed", timeout=10)
    task = client.get_task("j", "long")
    assert (task.execution_info.exit_code, task.execution_info.requeue_count) == (0, 1)
    assert client.get_node("p", node_id).state == "idle"


def test_unusable_node_gets_no_tasks(
    batch_emulator: BatchEmulator, client: Any, make_pool: Any
) -> None:
    make_pool("p", nodes=2, slots=1)
    batch_emulator.make_unusable("p", "tvmps_0001_d")
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    client.create_tasks("j", [_task(f"t{i}", "true") for i in range(5)])
    wait_until(_all_completed(client, "j", 5), timeout=10)
    assert {t.node_info.node_id for t in client.list_tasks("j")} == {"tvmps_0002_d"}
    assert client.get_node("p", "tvmps_0001_d").state == "unusable"


def test_job_terminate_and_delete(client: Any, make_pool: Any) -> None:
    make_pool("p", nodes=1, slots=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    client.create_task("j", _task("a", "sleep 30"))
    wait_until(lambda: client.get_task("j", "a").state == "running", timeout=10)
    client.create_task("j", _task("b", "true"))  # waits for the only slot
    # SDK quirk: begin_terminate_job needs options (without, it fails building the request).
    from azure.batch.models._models import BatchJobTerminateOptions

    options = BatchJobTerminateOptions(termination_reason="Stop")
    client.begin_terminate_job("j", options=options, polling_interval=0.05).result()
    job = client.get_job("j")
    assert job.state == "completed" and job.execution_info.pool_id == "p"
    assert job.execution_info.termination_reason == "Stop"
    # The running task is ended; the active one stays active, never scheduled.
    states = {t.id: t.state for t in client.list_tasks("j")}
    assert states == {"a": "completed", "b": "active"}
    assert client.get_task("j", "a").execution_info.failure_info.code == "TaskEnded"
    wait_until(lambda: client.get_node("p", "tvmps_0001_d").state == "idle", timeout=5)
    client.begin_delete_job("j", polling_interval=0.05).result()
    assert [j.id for j in client.list_jobs()] == []


def test_task_collection_reports_duplicates_per_task(client: Any, make_pool: Any) -> None:
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="none"))
    )
    client.create_task("j", _task("a", "true"))
    result = client.create_task_collection(
        "j", models.BatchTaskGroup(task_values=[_task("a", "true"), _task("b", "true")])
    )
    status = {
        r.task_id: (r.status, r.error.code if r.error else None) for r in result.result_values
    }
    assert status == {"a": ("clienterror", "TaskExists"), "b": ("success", None)}
    assert client.get_job_task_counts("j").task_counts.active == 2


def test_task_resource_files_in_and_output_files_out(client: Any, make_pool: Any) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    blobs: dict[str, bytes] = {"/c/input.txt": b"21"}

    class BlobStore(BaseHTTPRequestHandler):  # a stand-in for Azurite's Blob service
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            data = blobs.get(self.path.split("?")[0])
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def do_PUT(self) -> None:
            assert self.headers["x-ms-blob-type"] == "BlockBlob" and "sig=x" in self.path
            blobs[self.path.split("?")[0]] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), BlobStore)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        make_pool("p", nodes=1)
        client.create_job(
            models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
        )

        def output(pattern: str, path: str, condition: str) -> Any:
            return models.OutputFile(
                file_pattern=pattern,
                destination=models.OutputFileDestination(
                    container=models.OutputFileBlobContainerDestination(
                        container_url=f"{base}/out?sig=x", path=path
                    )
                ),
                upload_options=models.OutputFileUploadConfiguration(upload_condition=condition),
            )

        task = _task(
            "io",
            "mkdir -p res && echo $(( $(cat in/input.txt) * 2 )) > res/answer.txt",
            resource_files=[
                models.ResourceFile(http_url=f"{base}/c/input.txt?sig=r", file_path="in/input.txt")
            ],
            output_files=[
                output("res/*.txt", "io/results", "tasksuccess"),
                output("../stdout.txt", "io/stdout.txt", "taskcompletion"),
                output("../stderr.txt", "io/stderr.txt", "taskfailure"),
            ],
        )
        client.create_task("j", task)
        wait_until(lambda: client.get_task("j", "io").state == "completed", timeout=10)
        assert client.get_task("j", "io").execution_info.result == "success"
        assert blobs["/out/io/results/answer.txt"] == b"42\n"
        assert "/out/io/stdout.txt" in blobs and "/out/io/stderr.txt" not in blobs
    finally:
        server.shutdown()
        server.server_close()


def test_emulator_stop_kills_task_processes(tmp_path: Any) -> None:
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    from tests.conftest import process_exists

    pid_file = tmp_path / "pid"
    with BatchEmulator() as emulator:
        credential = AzureNamedKeyCredential(emulator.account_name, emulator.account_key)
        client = BatchClient(endpoint=emulator.url, credential=credential)
        client.create_pool(
            models.BatchPoolCreateOptions(id="p", vm_size="d2", target_dedicated_nodes=1)
        )
        client.create_job(
            models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
        )
        client.create_task("j", _task("sleeper", f"sleep 60 & echo $! > {pid_file}; wait"))
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", timeout=10)
        pid = int(pid_file.read_text())
        assert process_exists(pid)
    wait_until(lambda: not process_exists(pid), timeout=5, what="the task's child to be killed")


def test_task_terminate_delete_files_and_remove_nodes(client: Any, make_pool: Any) -> None:
    make_pool("p", nodes=2, slots=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    client.create_task("j", _task("long", "echo started; sleep 30"))
    client.create_task("j", _task("short", "echo done"))
    wait_until(lambda: client.get_task("j", "long").state == "running", timeout=10)
    wait_until(lambda: client.get_task("j", "short").state == "completed", timeout=10)
    names = {f.name for f in client.list_task_files("j", "short")}
    assert {"stdout.txt", "stderr.txt", "wd"} <= names
    client.terminate_task("j", "long")
    long = client.get_task("j", "long")
    assert long.state == "completed" and long.execution_info.failure_info.code == "TaskEnded"
    client.delete_task("j", "short")
    assert [t.id for t in client.list_tasks("j")] == ["long"]
    node_ids = [n.id for n in client.list_nodes("p")]
    client.begin_remove_nodes(
        "p", models.BatchNodeRemoveOptions(node_ids=node_ids[:1]), polling_interval=0.05
    ).result()
    assert [n.id for n in client.list_nodes("p")] == node_ids[1:]
    assert client.get_pool("p").target_dedicated_nodes == 1


def test_auto_pool_lives_exactly_as_long_as_its_job(client: Any) -> None:
    auto = models.BatchAutoPoolSpecification(
        auto_pool_id_prefix="scoped",
        pool_lifetime_option="job",
        keep_alive=False,
        pool=models.BatchPoolSpecification(vm_size="standard_d2s_v3", target_dedicated_nodes=2),
    )
    client.create_job(
        models.BatchJobCreateOptions(
            id="j", pool_info=models.BatchPoolInfo(auto_pool_specification=auto)
        )
    )
    job = client.get_job("j")
    pool_id = job.execution_info.pool_id
    assert pool_id.startswith("scoped_")
    assert job.pool_info.auto_pool_specification.pool_lifetime_option == "job"
    assert [p.id for p in client.list_pools()] == [pool_id]
    client.create_task("j", _task("a", "echo on $AZ_BATCH_POOL_ID"))
    client.update_job("j", models.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    wait_until(lambda: client.get_job("j").state == "completed", timeout=20, what="job end")
    task = client.get_task("j", "a")
    assert task.execution_info.exit_code == 0 and task.node_info.pool_id == pool_id
    wait_until(lambda: list(client.list_pools()) == [], timeout=10, what="auto pool deleted")


def test_auto_pool_of_a_terminated_job_is_deleted_unless_kept(client: Any) -> None:
    def job_on_auto_pool(job_id: str, keep_alive: bool) -> str:
        auto = models.BatchAutoPoolSpecification(
            pool_lifetime_option="job",
            keep_alive=keep_alive,
            pool=models.BatchPoolSpecification(vm_size="standard_d2s_v3"),
        )
        client.create_job(
            models.BatchJobCreateOptions(
                id=job_id, pool_info=models.BatchPoolInfo(auto_pool_specification=auto)
            )
        )
        return client.get_job(job_id).execution_info.pool_id

    from azure.batch.models._models import BatchJobTerminateOptions

    dropped = job_on_auto_pool("dropped", keep_alive=False)
    kept = job_on_auto_pool("kept", keep_alive=True)
    for job_id in ("dropped", "kept"):
        client.begin_terminate_job(
            job_id,
            options=BatchJobTerminateOptions(termination_reason="done"),
            polling_interval=0.05,
        ).result()
    wait_until(
        lambda: [p.id for p in client.list_pools()] == [kept], timeout=10, what="one pool left"
    )
    assert dropped != kept
    with pytest.raises(Exception, match="poolLifetimeOption"):
        client.create_job(
            models.BatchJobCreateOptions(
                id="schedule",
                pool_info=models.BatchPoolInfo(
                    auto_pool_specification=models.BatchAutoPoolSpecification(
                        pool_lifetime_option="jobschedule",
                        pool=models.BatchPoolSpecification(vm_size="standard_d2s_v3"),
                    )
                ),
            )
        )


def test_multi_instance_task_runs_coordination_everywhere_and_application_on_primary(
    client: Any, make_pool: Any
) -> None:
    make_pool("mpi", nodes=3, slots=1, enable_inter_node_communication=True)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="mpi"))
    )
    report = (
        "echo $AZ_BATCH_NODE_ID $AZ_BATCH_IS_CURRENT_NODE_MASTER $AZ_BATCH_HOST_LIST "
        "$AZ_BATCH_MASTER_NODE > $AZ_BATCH_TASK_SHARED_DIR/coordination.txt"
    )
    task = models.BatchTaskCreateOptions(
        id="mpi",
        command_line="/bin/bash -c 'cat $AZ_BATCH_TASK_SHARED_DIR/coordination.txt; echo app "
        "on $AZ_BATCH_NODE_ID'",
        multi_instance_settings=models.MultiInstanceSettings(
            number_of_instances=3, coordination_command_line=f"/bin/bash -c '{report}'"
        ),
    )
    client.create_task("j", task)
    wait_until(lambda: client.get_task("j", "mpi").state == "completed", timeout=20)
    done = client.get_task("j", "mpi")
    assert done.execution_info.exit_code == 0 and done.execution_info.result == "success"
    subtasks = list(client.list_subtasks("j", "mpi"))
    assert [s.id for s in subtasks] == [0, 1, 2]
    nodes = [s.node_info.node_id for s in subtasks]
    assert len(set(nodes)) == 3 and nodes[0] == done.node_info.node_id
    assert all(s.state == "completed" and s.exit_code == 0 for s in subtasks)
    out = b"".join(client.download_task_file("j", "mpi", "stdout.txt")).decode().split("\n")
    primary, host_list, master = out[0].split()[0:2], out[0].split()[2], out[0].split()[3]
    # Each node its own address (its ipAddress), the primary's first, as on a real pool.
    addresses = {n.id: n.ip_address for n in client.list_nodes("mpi")}
    assert primary == [nodes[0], "true"]
    assert (
        host_list.split(",") == [addresses[n] for n in nodes] and len(set(addresses.values())) == 3
    )
    assert master.startswith(addresses[nodes[0]] + ":")
    assert f"app on {nodes[0]}" in out
    # The subtasks' nodes ran the coordination command as non-masters.
    for node_id in nodes[1:]:
        text = b"".join(
            client.download_node_file("mpi", node_id, "workitems/j/job-1/mpi/coordination.txt")
        ).decode()
        assert text.split()[:2] == [node_id, "false"]
    assert all(n.state == "idle" for n in client.list_nodes("mpi"))


def test_multi_instance_failures_and_pools_that_cannot_run_them(
    client: Any, make_pool: Any
) -> None:
    make_pool("mpi", nodes=2, slots=1, enable_inter_node_communication=True)
    make_pool("plain", nodes=2, slots=1)
    for job_id, pool_id in (("j", "mpi"), ("k", "plain")):
        client.create_job(
            models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id=pool_id))
        )
    settings = models.MultiInstanceSettings(
        number_of_instances=2,
        coordination_command_line="/bin/bash -c 'test $AZ_BATCH_IS_CURRENT_NODE_MASTER = true'",
    )
    client.create_task(
        "j",
        models.BatchTaskCreateOptions(
            id="coord", command_line="true", multi_instance_settings=settings
        ),
    )
    too_many = models.MultiInstanceSettings(number_of_instances=3, coordination_command_line="true")
    client.create_task(
        "j",
        models.BatchTaskCreateOptions(
            id="big", command_line="true", multi_instance_settings=too_many
        ),
    )
    client.create_task(
        "k",
        models.BatchTaskCreateOptions(
            id="no-ib", command_line="true", multi_instance_settings=settings
        ),
    )
    wait_until(lambda: client.get_task("j", "coord").state == "completed", timeout=20)
    failed = client.get_task("j", "coord").execution_info
    assert failed.result == "failure" and "coordination command" in failed.failure_info.message
    # More instances than nodes, or a pool without inter-node communication: never scheduled.
    assert client.get_task("j", "big").state == "active"
    assert client.get_task("k", "no-ib").state == "active"


def test_terminatejob_job_without_tasks_ends_at_once(client: Any, make_pool: Any) -> None:
    # "if a Job contains no Tasks, then all Tasks are considered complete" (onAllTasksComplete)
    make_pool("p", nodes=1)
    client.create_job(
        models.BatchJobCreateOptions(
            id="j",
            pool_info=models.BatchPoolInfo(pool_id="p"),
            all_tasks_complete_mode="terminatejob",
        )
    )
    job = client.get_job("j")
    assert job.state == "completed" and job.execution_info.termination_reason == "AllTasksComplete"
    body = _refusal(lambda: client.create_task("j", _task("late", "true")))
    assert (body["status"], body["code"]) == (409, "JobCompleted")


def test_job_switched_to_terminatejob_ends_when_its_tasks_are_complete(
    client: Any, make_pool: Any
) -> None:
    make_pool("p", nodes=1)
    for job_id in ("early", "late"):
        client.create_job(
            models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id="p"))
        )
        client.create_task(job_id, _task("a", "true"))
    switch = models.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob")
    client.update_job("early", switch)  # its task is still to run
    wait_until(lambda: client.get_job("early").state == "completed", timeout=10)
    wait_until(lambda: client.get_task("late", "a").state == "completed", timeout=10)
    assert client.get_job("late").state == "active"  # noaction: stays active
    client.update_job("late", switch)  # every task already complete: it ends on the switch
    assert client.get_job("late").state == "completed"
    # "You may not change the value from terminatejob to noaction" (BatchJobUpdateOptions)
    back = models.BatchJobUpdateOptions(all_tasks_complete_mode="noaction")
    body = _refusal(lambda: client.update_job("early", back))
    assert (body["status"], body["code"]) == (400, "InvalidPropertyValue")


def test_deleted_job_is_gone_with_its_tasks(client: Any, make_pool: Any) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    make_pool("p", nodes=1)
    client.create_job(
        models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p"))
    )
    client.create_tasks("j", [_task(f"t{i}", "true") for i in range(3)])
    wait_until(_all_completed(client, "j", 3), timeout=10)
    client.begin_delete_job("j", polling_interval=0.05).result()
    assert [j.id for j in client.list_jobs()] == []
    with pytest.raises(ResourceNotFoundError):
        list(client.list_tasks("j"))
    with pytest.raises(ResourceNotFoundError):
        client.get_task("j", "t0")


def test_throttled_requests_answer_429_or_503_with_retry_after(
    batch_emulator: BatchEmulator, client: Any
) -> None:
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.exceptions import HttpResponseError

    credential = AzureNamedKeyCredential(batch_emulator.account_name, batch_emulator.account_key)
    no_retries = BatchClient(endpoint=batch_emulator.url, credential=credential, retry_total=0)
    batch_emulator.throttle(["Job_List"], status=429, count=1, retry_after=2)
    batch_emulator.throttle(["Pool_List"], status=503, count=1, retry_after=3)
    with pytest.raises(HttpResponseError) as info:
        list(no_retries.list_jobs())
    assert info.value.status_code == 429 and info.value.response.headers["Retry-After"] == "2"
    assert info.value.response.json()["code"] == "TooManyRequests"
    with pytest.raises(HttpResponseError) as info:
        list(no_retries.list_pools())
    assert info.value.status_code == 503 and info.value.response.headers["Retry-After"] == "3"
    assert info.value.response.json()["code"] == "ServerBusy"
    assert list(no_retries.list_jobs()) == []  # count=1: the next one is answered

    # The SDK's retry policy honours Retry-After and rides through.
    batch_emulator.reset_request_counts()
    batch_emulator.throttle(["Job_List"], status=503, count=2, retry_after=0)
    assert list(client.list_jobs()) == []
    assert batch_emulator.request_counts()["Job_List"] == 3


def test_a_task_naming_a_user_the_pool_lacks_fails_to_launch(client: Any, make_pool: Any) -> None:
    make_pool("users", nodes=2, slots=1, enable_inter_node_communication=True)
    client.create_job(
        models.BatchJobCreateOptions(id="u", pool_info=models.BatchPoolInfo(pool_id="users"))
    )
    client.create_task(
        "u",
        models.BatchTaskCreateOptions(
            id="nobody",
            command_line="/bin/true",
            user_identity=models.UserIdentity(username="nobody"),
            multi_instance_settings=models.MultiInstanceSettings(
                number_of_instances=2, coordination_command_line="/bin/true"
            ),
        ),
    )
    wait_until(lambda: client.get_task("u", "nobody").state == "completed", timeout=20)
    info = client.get_task("u", "nobody").execution_info
    assert info.result == "failure" and info.failure_info.code == "CommandLaunchFailed"
    assert "'nobody' of the task is not a user account of pool 'users'" in (
        info.failure_info.message
    )


def _mpi_pool(client: Any, make_pool: Any, key: str | None) -> None:
    account = models.UserAccount(
        name="azhpc",
        password="not-used-9Q!",
        linux_user_configuration=models.LinuxUserConfiguration(ssh_private_key=key)
        if key
        else None,
    )
    make_pool(
        "ssh", nodes=3, slots=1, enable_inter_node_communication=True, user_accounts=[account]
    )
    client.create_job(
        models.BatchJobCreateOptions(id="s", pool_info=models.BatchPoolInfo(pool_id="ssh"))
    )


#: On the primary: through the SSH stand-in to every node of the host list (``$USER`` etc.
#: expanded there, in the login environment the stand-in gives).
_HOP = (
    "for h in $(echo $AZ_BATCH_HOST_LIST | tr , ' '); do "
    "$OMPI_MCA_plm_rsh_agent $h 'echo $USER $HOME $SSH_CONNECTION' || exit 9; done"
)


@pytest.mark.parametrize("key", ["-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", None])
def test_ssh_between_nodes_only_for_a_pool_account_with_a_key(
    client: Any, make_pool: Any, key: str | None
) -> None:
    _mpi_pool(client, make_pool, key)
    client.create_task(
        "s",
        models.BatchTaskCreateOptions(
            id="hop",
            command_line="/bin/bash -c 'eval \"$HOP\"'",
            environment_settings=[models.EnvironmentSetting(name="HOP", value=_HOP)],
            user_identity=models.UserIdentity(username="azhpc"),
            multi_instance_settings=models.MultiInstanceSettings(
                number_of_instances=3, coordination_command_line="/bin/true"
            ),
        ),
    )
    wait_until(lambda: client.get_task("s", "hop").state == "completed", timeout=20)
    info = client.get_task("s", "hop").execution_info
    out = b"".join(client.download_task_file("s", "hop", "stdout.txt")).decode()
    err = b"".join(client.download_task_file("s", "hop", "stderr.txt")).decode()
    if key is None:  # no key: Batch sets up no SSH for the account
        assert info.exit_code == 9 and "azhpc@127.0.0." in err and "Permission denied" in err
        return
    assert info.exit_code == 0, err
    nodes = {n.ip_address: n.id for n in client.list_nodes("ssh")}
    lines = [line.split() for line in out.strip().splitlines()]
    assert [line[0] for line in lines] == ["azhpc"] * 3
    assert sorted(line[-2] for line in lines) == sorted(nodes)  # SSH_CONNECTION's server
    assert all(line[1].endswith(f"/{nodes[line[-2]]}/home/azhpc") for line in lines)


def test_resize_and_enable_autoscale_follow_batchs_rules() -> None:
    """Pools_ResizePool: "If the Pool is already resizing, the request fails with status code
    409"; Pools_EnablePoolAutoScale: not while a resize is in progress, and "not ... more than
    once every 30 seconds" (503 TooManyEnableAutoScaleRequests, Batch's error code table)."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.exceptions import HttpResponseError

    from azhpc.emulator.batch.runner import Timings

    # VM allocation takes a minute and the service's clock runs at real speed: the pool stays
    # resizing, and 30 s between two enable requests are 30 real seconds.
    timings = Timings(allocate=60.0, autoscale_minute=60.0)
    with BatchEmulator(timings=timings) as emulator:
        credential = AzureNamedKeyCredential(emulator.account_name, emulator.account_key)
        client = BatchClient(endpoint=emulator.url, credential=credential)
        client.create_pool(
            models.BatchPoolCreateOptions(
                id="r", vm_size="standard_d2s_v3", target_dedicated_nodes=1
            )
        )
        assert client.get_pool("r").allocation_state == "resizing"
        with pytest.raises(HttpResponseError) as resizing:
            client.begin_resize_pool(
                "r", models.BatchPoolResizeOptions(target_dedicated_nodes=2), polling_interval=0
            ).result()
        assert (resizing.value.status_code, resizing.value.error.code) == (409, "PoolBeingResized")
        formula = models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 0;"
        )
        with pytest.raises(HttpResponseError) as enabling:
            client.enable_pool_auto_scale("r", formula)
        assert (enabling.value.status_code, enabling.value.error.code) == (409, "PoolBeingResized")
        client.begin_stop_pool_resize("r", polling_interval=0.05).result()
        client.enable_pool_auto_scale("r", formula)
        with pytest.raises(HttpResponseError) as again:
            client.enable_pool_auto_scale("r", formula)
        assert (again.value.status_code, again.value.error.code) == (
            503,
            "TooManyEnableAutoScaleRequests",
        )
