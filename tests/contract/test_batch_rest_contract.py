"""The Batch REST contract checker itself: the vendored specification, the mapping of requests to
operations, and that wrong bodies are caught (the session-wide check is tests/contract/plugin.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from azhpc.emulator.batch.server import Exchange, add_observer, remove_observer
from tests.conftest import batch_available
from tests.contract.batch_rest import SPEC_PATH, Contract

SPEC_SHA256 = "c871d7c8a7d97a66df6bd2faae8d20b3ced131ef0fe2d53c757dc96d4b45bc58"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


def exchange(
    method: str,
    path: str,
    request: object = None,
    status: int = 200,
    response: object = None,
    query: dict[str, str] | None = None,
) -> Exchange:
    return Exchange(
        method=method,
        path=path,
        query={"api-version": "2025-06-01", **(query or {})},
        request_body=b"" if request is None else json.dumps(request).encode(),
        status=status,
        response_content_type=None if response is None else "application/json",
        response_body=b"" if response is None else json.dumps(response).encode(),
        operation=None,
    )


def test_contract_spec_is_the_vendored_file_for_the_api_version_the_sdk_sends(
    contract: Contract,
) -> None:
    azure_batch = pytest.importorskip("azure.batch")
    from azure.core.credentials import AzureNamedKeyCredential

    text = SPEC_PATH.read_text(encoding="utf-8")
    assert len(text) == 835_734
    assert hashlib.sha256(text.encode()).hexdigest() == SPEC_SHA256
    client = azure_batch.BatchClient(
        "https://x.batch.azure.com", AzureNamedKeyCredential("a", "a2V5")
    )
    assert contract.version == client._config.api_version == "2025-06-01"


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", "/jobs/j-1/addtaskcollection", "Tasks_CreateTaskCollection"),
        ("GET", "/jobs/j-1/tasks", "Tasks_ListTasks"),
        ("GET", "/jobs/j-1/tasks/task-00001", "Tasks_GetTask"),
        ("GET", "/jobs/j-1/tasks/t/files/wd/out/a.txt", "Tasks_GetTaskFile"),
        ("HEAD", "/pools/p", "Pools_PoolExists"),
        ("POST", "/pools/p/removenodes", "Pools_RemoveNodes"),
        ("GET", "/jobs/j-1/taskcounts", "Jobs_GetJobTaskCounts"),
        ("PUT", "/pools/p", None),
        ("GET", "/nothing/here", None),
    ],
)
def test_contract_maps_method_and_path_to_the_operation(
    contract: Contract, method: str, path: str, operation: str | None
) -> None:
    op = contract.operation(method, path)
    assert (op.operation_id if op else None) == operation


def test_contract_accepts_a_well_formed_task_collection(contract: Contract) -> None:
    body = {
        "value": [
            {
                "id": "task-00001",
                "commandLine": "/bin/sh -c 'python -m azhpc.worker batch'",
                "resourceFiles": [
                    {"httpUrl": "https://a.blob.core.windows.net/c/x", "filePath": "x"}
                ],
                "environmentSettings": [{"name": "A", "value": "1"}],
                "constraints": {"maxTaskRetryCount": 2, "maxWallClockTime": "PT1H"},
                "outputFiles": [
                    {
                        "filePattern": "out/*",
                        "destination": {"container": {"containerUrl": "https://a.blob/c?sig=x"}},
                        "uploadOptions": {"uploadCondition": "tasksuccess"},
                    }
                ],
            }
        ]
    }
    result = contract.check(exchange("POST", "/jobs/j/addtaskcollection", body, 200, {"value": []}))
    assert result.operation == "Tasks_CreateTaskCollection"
    assert result.problems == []


def test_contract_catches_a_task_with_an_unknown_property(contract: Contract) -> None:
    body = {"value": [{"id": "t", "commandLine": "true", "retries": 3}]}
    problems = contract.check(exchange("POST", "/jobs/j/addtaskcollection", body)).problems
    assert any("value/0" in p and "'retries' was unexpected" in p for p in problems), problems


def test_contract_catches_a_task_with_a_wrong_type(contract: Contract) -> None:
    body = {"value": [{"id": "t", "commandLine": "true", "requiredSlots": "2"}]}
    problems = contract.check(exchange("POST", "/jobs/j/addtaskcollection", body)).problems
    assert any("value/0/requiredSlots" in p and "not of type 'integer'" in p for p in problems)


def test_contract_catches_missing_required_wrong_enum_and_bad_formats(contract: Contract) -> None:
    body = {
        "value": [
            {
                "id": "t",
                "constraints": {"maxWallClockTime": "1 hour", "maxTaskRetryCount": 2**40},
                "outputFiles": [
                    {
                        "filePattern": "*",
                        "destination": {"container": {"containerUrl": "not a url"}},
                        "uploadOptions": {"uploadCondition": "always"},
                    }
                ],
            }
        ]
    }
    problems = "\n".join(
        contract.check(exchange("POST", "/jobs/j/addtaskcollection", body)).problems
    )
    assert "'commandLine' is a required property" in problems
    assert "maxWallClockTime: '1 hour' is not a 'duration'" in problems
    assert "maxTaskRetryCount" in problems and "'int32'" in problems
    assert "containerUrl: 'not a url' is not a 'uri'" in problems
    assert "'always' is not one of" in problems


def test_contract_catches_read_only_properties_and_unknown_query_parameters(
    contract: Contract,
) -> None:
    body = {"id": "t", "constraints": {"maxTaskRetryCount": 1}}  # id is read-only in BatchTask
    problems = contract.check(
        exchange("PUT", "/jobs/j/tasks/t", body, query={"$top": "5"})
    ).problems
    assert any("'id' was unexpected" in p for p in problems), problems
    assert any("'$top'" in p for p in problems), problems


def test_contract_checks_the_response_against_the_status_code(contract: Contract) -> None:
    error = {"code": "JobNotFound", "message": {"lang": "en-US", "value": "gone"}}
    ok = contract.check(exchange("GET", "/jobs/j", status=404, response={**error}))
    assert ok.problems == []
    wrong_status = contract.check(exchange("DELETE", "/jobs/j", status=200))
    assert any(
        "status 200 is not one the operation declares (202)" in p for p in wrong_status.problems
    )
    extra = contract.check(exchange("GET", "/jobs/j", status=404, response={**error, "hint": "x"}))
    assert any("'hint' was unexpected" in p for p in extra.problems), extra.problems
    undeclared_body = contract.check(
        exchange("POST", "/jobs", {"id": "j", "poolInfo": {}}, 201, {})
    )
    assert any("declares none" in p for p in undeclared_body.problems)


def test_contract_relaxes_required_only_for_select(contract: Contract) -> None:
    listed = {"value": [{"id": "t", "state": "completed"}], "odata.metadata": "x"}
    full = contract.check(exchange("GET", "/jobs/j/tasks", response=listed))
    assert any("'url' is a required property" in p for p in full.problems)
    selected = contract.check(
        exchange("GET", "/jobs/j/tasks", response=listed, query={"$select": "id,state"})
    )
    assert selected.problems == []
    invented = {"value": [{"id": "t", "state": "finished"}]}
    wrong = contract.check(
        exchange("GET", "/jobs/j/tasks", response=invented, query={"$select": "id,state"})
    )
    assert any("'finished' is not one of" in p for p in wrong.problems)


def test_contract_reports_requests_for_operations_not_in_the_spec(contract: Contract) -> None:
    result = contract.check(exchange("PUT", "/pools/p", {}, 404))
    assert result.operation is None
    assert result.problems == ["no operation of the specification is PUT /pools/p"]


@pytest.fixture
def seen() -> Iterator[list[Exchange]]:
    exchanges: list[Exchange] = []
    add_observer(exchanges.append)
    yield exchanges
    remove_observer(exchanges.append)


def test_emulator_observer_sees_each_batch_request_and_response(seen: list[Exchange]) -> None:
    if not batch_available():
        pytest.skip("needs azure-batch")
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.exceptions import ResourceNotFoundError

    from azhpc.emulator.batch import BatchEmulator

    with BatchEmulator() as batch:
        client = BatchClient(
            batch.url, AzureNamedKeyCredential(batch.account_name, batch.account_key)
        )
        client.create_pool({"id": "p", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": 0})
        with pytest.raises(ResourceNotFoundError):
            client.get_job("missing")
        batch.request_counts()  # the control API is not observed
    mine = [e for e in seen if e.path in ("/pools", "/jobs/missing")]
    assert [(e.method, e.path, e.status, e.operation) for e in mine] == [
        ("POST", "/pools", 201, "Pool_Add"),
        ("GET", "/jobs/missing", 404, "Job_Get"),
    ]
    assert json.loads(mine[0].request_body)["id"] == "p"
    assert mine[0].response_body == b""
    assert json.loads(mine[1].response_body)["code"] == "JobNotFound"
    assert not any(e.path.startswith("/_emulator/") for e in seen)
