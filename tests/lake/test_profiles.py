"""connect() on each profile, bad credentials, the DFS fallback, and secrets kept out of sight."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import azhpc
import azhpc.lake
from azhpc.config import resolve_settings
from azhpc.emulator.azurite import _DEV_ACCOUNT_KEY
from azhpc.lake import Lake, LakeAuthError, LakeUnreachableError, Rename

from .conftest import fresh_container

WRONG_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ" + "=" * 2


def make_container(azurite, name: str) -> str:
    lake = Lake(resolve_settings("emulated", container=name), emulator=azurite)
    lake.ensure_container()
    return name


def test_profiles_local_session_has_a_folder_lake(tmp_path: Path):
    with azhpc.connect(lake_root=str(tmp_path), backend="debug") as session:
        assert session.lake.profile == "local" and session.settings.lake_root == str(tmp_path)
        df = pd.DataFrame({"a": [1, 2]})
        df.to_parquet(
            azhpc.lake.url("/raw/a.parquet"), storage_options=azhpc.lake.storage_options()
        )
        assert azhpc.lake.ls("/raw") == ["/raw/a.parquet"]
        assert azhpc.lake.exists("/raw/a.parquet")
        with azhpc.lake.open("/raw/note.txt", "w") as f:
            f.write("hi")
        assert azhpc.lake.filesystem().cat_file("/raw/note.txt") == b"hi"
        assert azhpc.lake.rename("/raw/note.txt", "/raw/moved.txt") is Rename.ATOMIC
        azhpc.lake.rm("/raw", recursive=True)
        assert not azhpc.lake.exists("/raw")
    assert session.lake.closed


def test_profiles_emulated_session_owns_its_azurite(tmp_path: Path):
    with azhpc.connect("emulated", container="emu", workers=1, progress=False) as session:
        azurite = session.lake.emulator
        assert azurite.running and session.lake.url("/x.csv") == "abfs://emu/x.csv"
        df = pd.DataFrame({"n": range(10)})
        df.to_csv(
            azhpc.lake.url("/in/n.csv"), index=False, storage_options=azhpc.lake.storage_options()
        )
        # a scattered task reads the lake through the same url + storage options
        url, options = azhpc.lake.url("/in/n.csv"), azhpc.lake.storage_options()
        total = session.submit(lambda: int(pd.read_csv(url, storage_options=options)["n"].sum()))
        assert total.result(timeout=60) == 45
    assert not azurite.running


def test_profiles_azure_without_a_batch_account_says_which_setting_but_the_lake_works(azurite):
    with pytest.raises(azhpc.ConfigError, match="has no Batch account: set batch_url"):
        azhpc.connect("azure", connection_string=azurite.connection_string)
    with azhpc.connect(
        "azure",
        connection_string=azurite.connection_string,
        container=make_container(azurite, "lake-only"),
        backend="debug",
    ) as session:  # fmt: skip
        with session.lake.open("/x.txt", "wb") as f:
            f.write(b"x")
        assert session.lake.ls("/") == ["/x.txt"]


def test_profiles_azure_needs_an_account(isolated_config: Path):
    with pytest.raises(azhpc.ConfigError, match=r"needs the storage account.*AZHPC_ACCOUNT_NAME"):
        Lake(resolve_settings("azure"))


def test_profiles_wrong_key_raises_lake_auth_error_naming_profile_and_setting(azurite):
    bad = azurite.connection_string_with_key(WRONG_KEY)
    with pytest.raises(LakeAuthError) as info:
        azhpc.connect("azure", connection_string=bad, backend="debug")
    message = str(info.value)
    assert "'azure' profile" in message and "connection_string" in message
    assert "AZHPC_CONNECTION_STRING" in message
    assert WRONG_KEY not in message and _DEV_ACCOUNT_KEY not in message
    assert info.value.setting == "connection_string" and info.value.status == 403
    assert isinstance(info.value, azhpc.AzhpcError) and isinstance(info.value, PermissionError)
    # on an operation, too, and through a named profile of the config file
    lake = Lake(resolve_settings("azure", connection_string=bad, container="c-auth"))
    with pytest.raises(LakeAuthError, match="connection_string"):
        lake.exists("/x")
    with pytest.raises(LakeAuthError):
        lake.put(__file__, "/x.py")


def test_profiles_unreachable_account_raises_lake_unreachable_error():
    endpoint = "http://127.0.0.1:9/devstoreaccount1"  # discard port: nothing listens
    cs = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={WRONG_KEY};BlobEndpoint={endpoint};"
    )
    lake = Lake(resolve_settings("azure", connection_string=cs))
    lake.filesystem().fs.service_client._config.retry_policy.total_retries = 0
    with pytest.raises(LakeUnreachableError, match="could not be reached") as info:
        lake.check()
    assert WRONG_KEY not in str(info.value)


def test_profiles_rename_on_azurite_uses_the_blob_fallback(azurite, caplog):
    lake = Lake(resolve_settings("emulated", container=fresh_container()), emulator=azurite)
    lake.ensure_container()
    assert lake.hierarchical_namespace is False  # Azurite says so: no DFS API
    for name in ("/stage/a.bin", "/stage/sub/b.bin"):
        with lake.open(name, "wb") as f:
            f.write(name.encode())
    assert lake.rename("/stage", "/final") is Rename.COPY_DELETE
    assert lake.ls("/final") == ["/final/a.bin", "/final/sub"] and not lake.exists("/stage")
    # An account claiming a hierarchical namespace whose endpoint does not serve DFS calls:
    # the DFS rename is tried, detected as not served, and the blob path is used.
    lake._hns = True
    with caplog.at_level(logging.INFO, logger="azhpc.lake"):
        assert lake.rename("/final", "/again") is Rename.COPY_DELETE
    assert "falling back to blob copy+delete" in caplog.text
    with lake.open("/again/sub/b.bin") as f:
        assert f.read() == b"/stage/sub/b.bin"


def _sas_connection_string(azurite) -> tuple[str, str]:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas(
        azurite.account_name, _DEV_ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, delete=True,
                                         create=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    signature = next(p for p in sas.split("&") if p.startswith("sig="))[4:]
    return f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}", signature


def test_profiles_no_secret_in_reprs_logs_or_errors(azurite, caplog, tmp_path: Path):
    from urllib.parse import unquote

    sas_cs, signature = _sas_connection_string(azurite)
    secrets = [_DEV_ACCOUNT_KEY, azurite.connection_string, signature, unquote(signature), sas_cs]
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for cs in (sas_cs, azurite.connection_string):
            container = make_container(azurite, fresh_container())
            with azhpc.connect("azure", connection_string=cs, container=container,
                               backend="debug") as session:  # fmt: skip
                session.lake.put(__file__, "/code/test.py")
                session.lake.rename("/code", "/moved")
                texts += [repr(session), repr(session.lake), repr(session.settings),
                          str(session.settings), repr(session.lake.storage_options())]  # fmt: skip
                for failing in (lambda: session.lake.open("/missing").read(),
                                lambda: session.lake.rm("/missing"),
                                lambda: session.lake.rename("/missing", "/x")):  # fmt: skip
                    with pytest.raises(FileNotFoundError) as info:
                        failing()
                    texts.append(str(info.value))
        with azhpc.connect("emulated", backend="debug") as session:
            texts += [repr(session), repr(session.lake), repr(session.lake.emulator)]
        bad = azurite.connection_string_with_key(WRONG_KEY)
        with pytest.raises(LakeAuthError) as info:
            azhpc.connect("azure", connection_string=bad, backend="debug")
        texts.append(str(info.value))
        secrets.append(WRONG_KEY)
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert len(caplog.records) > 10  # the SDKs did log their requests
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret found in: {text[:200]}"
        assert "sig=" not in text or "sig=REDACTED" in text or "sig=***" in text
