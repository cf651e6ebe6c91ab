"""``azhpc doctor`` and ``azhpc.doctor()``: every check passes on a working setup, and a broken
one (wrong Batch key, a container the credentials cannot write, a retired VM size) is named
check by check, with what to do, and no secret in the output.

The ``azure`` profile is pointed at an emulated session's Azurite and Batch emulator (see
``tests.conftest.azure_profile_env``); the emulator's List Supported Images answers are checked
against the REST specification like every other response in the suite.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

import azhpc
from azhpc.backends.batch.doctor import (
    DEFAULT_VM_SIZES,
    PROBE_FOLDER,
    DoctorCheck,
    DoctorReport,
    check_clock,
    check_images,
    check_vm_size,
)
from azhpc.pools.spec import ImageReference
from tests.conftest import azure_profile_env

#: A well-formed base64 key that is not the emulator's.
WRONG_KEY = "d3Jvbmcta2V5LW5vdC10aGUtZW11bGF0b3Jz"

ALL_CHECKS = [
    "batch account",
    "batch images",
    "storage account",
    "container writable",
    "SAS for nodes",
    "clock",
    *(f"vm size {size}" for size in DEFAULT_VM_SIZES),
]


def _account_key(connection_string: str) -> str:
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return fields["AccountKey"]


def read_only_connection_string(host: azhpc.Session) -> tuple[str, str]:
    """A connection string to ``host``'s Azurite with an account SAS that may read and list,
    not write; and the SAS itself (a secret that must not be printed)."""
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    azurite = host.lake.emulator
    sas = generate_account_sas(
        azurite.account_name,
        _account_key(azurite.connection_string),
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    return f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}", sas


def broken_env(host: azhpc.Session) -> tuple[dict[str, str], list[str]]:
    """The ``azure`` settings of ``host`` with a wrong Batch key and a read-only storage SAS;
    and the secrets involved."""
    connection_string, sas = read_only_connection_string(host)
    env = {
        **azure_profile_env(host),
        "AZHPC_BATCH_ACCOUNT_KEY": WRONG_KEY,
        "AZHPC_CONNECTION_STRING": connection_string,
    }
    good = azure_profile_env(host)
    secrets = [
        WRONG_KEY,
        sas.split("sig=", 1)[1].split("&", 1)[0],
        good["AZHPC_BATCH_ACCOUNT_KEY"],
        _account_key(good["AZHPC_CONNECTION_STRING"]),
    ]
    return env, secrets


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azhpc.cli", "doctor", *args],
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines_of(output: str) -> dict[str, str]:
    """The report's check lines by check name: ``{"clock": "✔ clock: ..."}``."""
    found = {}
    for line in output.splitlines():
        mark, _, rest = line.partition(" ")
        if mark in ("✔", "✘", "-"):
            found[rest.split(":", 1)[0]] = line
    return found


@pytest.fixture
def azure_env(
    batch_session: azhpc.Session, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """This process's environment pointing the ``azure`` profile at the batch session."""
    env = azure_profile_env(batch_session)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


# -- the command line -------------------------------------------------------------------------


def test_doctor_cli_passes_on_emulated() -> None:
    done = run_cli("--profile", "emulated")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = lines_of(done.stdout)
    assert list(lines) == ALL_CHECKS, done.stdout
    assert all(line.startswith("✔") for line in lines.values()), done.stdout
    assert f"all {len(ALL_CHECKS)} checks passed" in done.stdout


def test_doctor_cli_passes_on_an_azure_profile(batch_session: azhpc.Session) -> None:
    done = run_cli(
        "--profile",
        "azure",
        "--vm-size",
        "Standard_HB120rs_v3",
        env=azure_profile_env(batch_session),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = lines_of(done.stdout)
    assert list(lines) == [*ALL_CHECKS, "vm size Standard_HB120rs_v3"], done.stdout
    assert "(connection_string)" in lines["storage account"]
    assert "signed with the account key" in lines["SAS for nodes"]


def test_doctor_cli_names_each_problem_of_a_broken_profile(batch_session: azhpc.Session) -> None:
    env, secrets = broken_env(batch_session)
    done = run_cli("--profile", "azure", "--vm-size", "Standard_H16r", env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = lines_of(done.stdout)
    failed = {name for name, line in lines.items() if line.startswith("✘")}
    assert failed == {
        "batch account",
        "container writable",
        "SAS for nodes",
        "vm size Standard_H16r",
    }, output
    assert lines["batch images"].startswith("- batch images: not checked")
    assert lines["storage account"].startswith("✔")  # reading is allowed
    # Each failure says what to do: the setting and its variable, the SAS permissions, the
    # sizes to use instead.
    assert "refused the shared key" in lines["batch account"]
    assert "fix: check batch_account_key" in output and "AZHPC_BATCH_ACCOUNT_KEY" in output
    assert "AuthorizationPermissionMismatch" in lines["container writable"]
    assert "sp=rwdlc" in output and "AZHPC_CONNECTION_STRING" in output
    assert "retired by Azure on 2022-08-31" in lines["vm size Standard_H16r"]
    assert "Standard_HB120rs_v3" in output
    assert "4 check(s) failed, 1 skipped" in done.stdout
    for secret in secrets:
        assert secret not in output


def test_doctor_cli_refuses_an_unknown_profile() -> None:
    done = run_cli("--profile", "nosuchprofile")
    assert done.returncode == 2
    assert "unknown profile 'nosuchprofile'" in done.stderr


# -- the Python API ---------------------------------------------------------------------------


def test_doctor_api_passes_and_leaves_no_probe_behind(
    azure_env: dict[str, str], batch_session: azhpc.Session
) -> None:
    report = azhpc.doctor("azure")
    assert isinstance(report, DoctorReport)
    assert report.ok, str(report)
    assert [check.name for check in report.checks] == ALL_CHECKS
    assert report.failures == []
    assert not batch_session.lake.exists(PROBE_FOLDER) or batch_session.lake.ls(PROBE_FOLDER) == []


def test_doctor_api_reports_each_failed_check_with_its_fix(
    batch_session: azhpc.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, secrets = broken_env(batch_session)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    report = azhpc.doctor("azure", vm_sizes=["Standard_H16r", "Standard_D2s_v5"])
    assert not report.ok
    by_name = {check.name: check for check in report.checks}
    assert [c.name for c in report.failures] == [
        "batch account",
        "batch images",
        "container writable",
        "SAS for nodes",
        "vm size Standard_H16r",
    ]
    assert by_name["batch images"].skipped
    assert all(c.fix for c in report.failures if not c.skipped)
    assert "batch_account_key" in by_name["batch account"].fix
    assert by_name["clock"].ok  # the refusal still carried the service's Date
    text = report.render(unicode=False)
    assert "FAIL batch account" in text and "SKIP batch images" in text
    assert "OK   storage account" in text
    for secret in secrets:
        assert secret not in text and secret not in repr(report)


def test_doctor_api_wrong_storage_key_skips_the_checks_that_need_storage(
    batch_session: azhpc.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = batch_session.lake.emulator.connection_string_with_key(WRONG_KEY)
    for name, value in {
        **azure_profile_env(batch_session),
        "AZHPC_CONNECTION_STRING": wrong,
    }.items():
        monkeypatch.setenv(name, value)
    report = azhpc.doctor("azure")
    by_name = {check.name: check for check in report.checks}
    assert [c.name for c in report.failures] == [
        "storage account",
        "container writable",
        "SAS for nodes",
    ]
    assert "refused the credentials (HTTP 403" in by_name["storage account"].detail
    assert "AZHPC_CONNECTION_STRING" in by_name["storage account"].fix
    assert by_name["container writable"].skipped and by_name["SAS for nodes"].skipped
    assert by_name["batch account"].ok and by_name["batch images"].ok
    assert WRONG_KEY not in str(report)


def test_doctor_api_azure_profile_without_batch_url_says_how_to_find_it(
    batch_session: azhpc.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in azure_profile_env(batch_session).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AZHPC_BATCH_URL")
    report = azhpc.doctor("azure")
    batch = report.checks[0]
    assert (batch.name, batch.ok) == ("batch account", False)
    assert "AZHPC_BATCH_URL" in batch.fix and "accountEndpoint" in batch.fix
    assert report.checks[1].skipped
    assert {c.name for c in report.checks if c.ok} >= {"storage account", "container writable"}


def test_doctor_api_on_the_local_profile_has_nothing_to_check() -> None:
    report = azhpc.doctor("local")
    assert report.ok
    assert [check.name for check in report.checks] == ["profile"]


def test_doctor_is_exported_lazily() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, azhpc; assert 'azhpc.backends.batch.doctor' not in sys.modules; "
            "print(azhpc.doctor.__module__, azhpc.DoctorReport.__name__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["azhpc.backends.batch.doctor", "DoctorReport"]


# -- the checks themselves --------------------------------------------------------------------


def test_doctor_check_clock_fails_beyond_five_minutes() -> None:
    now = dt.datetime(2026, 12, 2, 18, 0, 0, tzinfo=dt.UTC)
    assert check_clock(format_datetime(now, usegmt=True), now).ok
    assert check_clock(format_datetime(now - dt.timedelta(minutes=4), usegmt=True), now).ok
    late = check_clock(format_datetime(now - dt.timedelta(minutes=7), usegmt=True), now)
    assert not late.ok
    assert "420 s ahead of the service" in late.detail
    assert "timedatectl" in late.fix
    early = check_clock(format_datetime(now + dt.timedelta(minutes=6), usegmt=True), now)
    assert not early.ok and "behind" in early.detail
    assert not check_clock("not a date", now).ok


def _supported(publisher: str, offer: str, sku: str, agent: str, end: dt.datetime | None = None):
    return SimpleNamespace(
        node_agent_sku_id=agent,
        image_reference=SimpleNamespace(publisher=publisher, offer=offer, sku=sku),
        batch_support_end_of_life=end,
    )


def test_doctor_check_images_needs_image_and_agent_and_life_left() -> None:
    want = [ImageReference.ubuntu_2204()]
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    agent = "batch.node.ubuntu 22.04"
    image = ("Canonical", "0001-com-ubuntu-server-jammy", "22_04-LTS")
    assert check_images([_supported(*image, agent)], want, now).ok  # case-insensitive
    wrong_agent = check_images([_supported(*image, "batch.node.ubuntu 24.04")], want, now)
    assert not wrong_agent.ok and "az batch pool supported-images list" in wrong_agent.fix
    ended = check_images([_supported(*image, agent, now - dt.timedelta(days=1))], want, now)
    assert not ended.ok and "end of life" in ended.detail
    ending = check_images([_supported(*image, agent, now + dt.timedelta(days=30))], want, now)
    assert ending.ok and "until 2027-01-01" in ending.detail


def test_doctor_check_vm_size_current_retired_and_unknown() -> None:
    assert check_vm_size("standard_d2s_v5").ok
    retired = check_vm_size("Standard_NC6s_v3")
    assert not retired.ok and "Standard_NC24ads_A100_v4" in retired.fix
    unknown = check_vm_size("Standard_D2s_v9")
    assert not unknown.ok and "did you mean" in unknown.fix


def test_doctor_default_vm_size_is_the_one_azhpc_uses() -> None:
    from azhpc.backends.batch.factory import EMULATED_VM_SIZE

    assert EMULATED_VM_SIZE in DEFAULT_VM_SIZES


def test_doctor_report_renders_one_line_per_check_and_a_summary() -> None:
    report = DoctorReport(
        "x",
        [
            DoctorCheck("a", True, "fine"),
            DoctorCheck("b", False, "broken", "do this"),
            DoctorCheck("c", False, "not checked: b failed", skipped=True),
        ],
    )
    assert report.render().splitlines() == [
        "azhpc doctor: profile 'x'",
        "✔ a: fine",
        "✘ b: broken",
        "    fix: do this",
        "- c: not checked: b failed",
        "1 check(s) failed, 1 skipped, 1 passed",
    ]
    assert not report.ok


# -- the emulator's List Supported Images ------------------------------------------------------


def test_emulator_lists_supported_images_with_filter_and_pages(
    batch_session: azhpc.Session,
) -> None:
    from azure.core.exceptions import HttpResponseError

    client = batch_session.backend.account.client()
    everything = list(client.list_supported_images(max_results=2))
    assert len(everything) > 3
    assert {i.os_type.lower() for i in everything} == {"linux", "windows"}
    linux = list(client.list_supported_images(filter="osType eq 'linux'"))
    assert linux and all(i.os_type.lower() == "linux" for i in linux)
    ubuntu = list(
        client.list_supported_images(filter="nodeAgentSKUId eq 'batch.node.ubuntu 22.04'")
    )
    assert ("microsoft-dsvm", "ubuntu-hpc", "2204") in {
        (i.image_reference.publisher, i.image_reference.offer, i.image_reference.sku)
        for i in ubuntu
    }
    with pytest.raises(HttpResponseError) as refused:
        list(client.list_supported_images(filter="imageReference/sku eq '2204'"))
    assert refused.value.status_code == 400
