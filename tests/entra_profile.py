"""A keyless ``azure`` profile on the emulators: HTTPS with a test CA, Entra ID tokens only.

Azurite runs with ``--oauth basic`` over HTTPS, the Batch emulator with ``auth="token"`` over
HTTPS; both present a server certificate of a test CA that this test process (and the task
processes it starts) trusts through ``REQUESTS_CA_BUNDLE`` (requests: azure-core's default
transport) and ``SSL_CERT_FILE`` (the ssl module's defaults: aiohttp, so adlfs), each set to
certifi's bundle plus the test CA, so real CAs stay trusted. No account key is given to
anything: the lake signs the nodes' SAS with a user delegation key.

Azurite 3.35 and azure-storage-blob 12.31 disagree on a user delegation SAS: the SDK always
signs two lines more (signed request headers and query parameters, from service version
2026-04-06) than Azurite computes, so Azurite refuses every such SAS the SDK makes. While the
profile is up, :func:`azurite_delegation_sas` stands in for the SDK's ``generate_blob_sas`` /
``generate_container_sas`` for user delegation SAS in this process: the same SAS, signed at
service version 2025-07-05 (the string to sign of Azure's docs for that version), which Azurite
accepts.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc.emulator.certs import TestCertificates, make_test_certificates
from azhpc.emulator.tokens import TestTokenCredential

__all__ = ["KeylessProfile", "keyless_profile", "trust_test_ca"]


@contextlib.contextmanager
def trust_test_ca(certificates: TestCertificates, folder: Path) -> Iterator[Path]:
    """Trust the test CA (as well as certifi's CAs) in this process and its children."""
    import certifi

    bundle = folder / "trusted.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + certificates.ca_file.read_bytes())
    # aiohttp (adlfs) makes its verifying SSL context once, at import: if an earlier test
    # imported it, the variables below come too late for it, so it learns the CA directly
    # (additive; the CA's key is gone with the folder).
    with contextlib.suppress(ImportError):
        import aiohttp.connector

        cached = getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None)
        if cached is not None:
            cached.load_verify_locations(cafile=str(certificates.ca_file))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        patch.setenv("SSL_CERT_FILE", str(bundle))
        yield bundle


class KeylessProfile:
    """The running emulators of a keyless profile and the settings that reach them."""

    def __init__(self, certificates: TestCertificates, azurite: Any, batch: Any) -> None:
        self.certificates = certificates
        self.azurite = azurite
        self.batch = batch
        self.credential = TestTokenCredential()

    def environment(self) -> dict[str, str]:
        """The ``AZHPC_*`` variables of the profile (no key among them)."""
        return {
            "AZHPC_ACCOUNT_NAME": self.azurite.account_name,
            "AZHPC_BLOB_ENDPOINT": self.azurite.blob_endpoint,
            "AZHPC_BATCH_URL": self.batch.url,
            "AZHPC_BATCH_ACCOUNT_NAME": self.batch.account_name,
        }

    def connect(self, **options: Any) -> azhpc.Session:
        """``azhpc.connect("azure", credential=TestTokenCredential())`` on the emulators."""
        with pytest.MonkeyPatch.context() as patch:
            for name in ("AZHPC_ACCOUNT_KEY", "AZHPC_CONNECTION_STRING", "AZHPC_SAS_TOKEN"):
                patch.delenv(name, raising=False)
            patch.delenv("AZHPC_BATCH_ACCOUNT_KEY", raising=False)
            patch.setenv("AZHPC_CONFIG", str(self.certificates.ca_file.parent / "none.toml"))
            for name, value in self.environment().items():
                patch.setenv(name, value)
            return azhpc.connect("azure", credential=self.credential, **options)

    def create_container(self, name: str = "azhpc") -> None:
        """Create the lake's container, with a bearer token (the azure profile does not)."""
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient(self.azurite.blob_endpoint, credential=self.credential) as svc:
            svc.create_container(name)


#: The SAS service version both Azurite 3.35 and Azure accept for user delegation SAS.
AZURITE_SAS_VERSION = "2025-07-05"


def azurite_delegation_sas(
    account_name: str,
    container_name: str,
    blob_name: str | None = None,
    *,
    permission: Any,
    expiry: dt.datetime,
    start: dt.datetime,
    user_delegation_key: Any,
) -> str:
    """A user delegation SAS query string (blob, or container with ``blob_name=None``) at
    service version 2025-07-05 ("Create a user delegation SAS": the string to sign)."""
    key = user_delegation_key

    def when(value: dt.datetime) -> str:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    resource = "b" if blob_name else "c"
    canonical = f"/blob/{account_name}/{container_name}" + (f"/{blob_name}" if blob_name else "")
    fields = {
        "sp": str(permission),
        "st": when(start),
        "se": when(expiry),
        "skoid": key.signed_oid,
        "sktid": key.signed_tid,
        "skt": key.signed_start,
        "ske": key.signed_expiry,
        "sks": key.signed_service,
        "skv": key.signed_version,
        "sv": AZURITE_SAS_VERSION,
        "sr": resource,
    }
    lines = [fields["sp"], fields["st"], fields["se"], canonical]
    lines += [fields[k] for k in ("skoid", "sktid", "skt", "ske", "sks", "skv")]
    lines += ["", "", "", "", ""]  # saoid, suoid, scid, skdutid, sduoid
    lines += ["", "", AZURITE_SAS_VERSION, resource, "", ""]  # sip, spr, sv, sr, snapshot, ses
    lines += ["", "", "", "", ""]  # rscc, rscd, rsce, rscl, rsct
    digest = hmac.new(
        base64.b64decode(key.value), "\n".join(lines).encode(), hashlib.sha256
    ).digest()
    fields["sig"] = base64.b64encode(digest).decode()
    return urllib.parse.urlencode(fields)


@contextlib.contextmanager
def _azurite_compatible_sas() -> Iterator[None]:
    import azure.storage.blob

    sdk_blob_sas = azure.storage.blob.generate_blob_sas
    sdk_container_sas = azure.storage.blob.generate_container_sas

    def blob_sas(account_name: str, container_name: str, blob_name: str, **kw: Any) -> str:
        if kw.get("user_delegation_key") is None:  # an account key: the SDK's SAS is fine
            return sdk_blob_sas(account_name, container_name, blob_name, **kw)
        return azurite_delegation_sas(account_name, container_name, blob_name, **kw)

    def container_sas(account_name: str, container_name: str, **kw: Any) -> str:
        if kw.get("user_delegation_key") is None:
            return sdk_container_sas(account_name, container_name, **kw)
        return azurite_delegation_sas(account_name, container_name, None, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(azure.storage.blob, "generate_blob_sas", blob_sas)
        patch.setattr(azure.storage.blob, "generate_container_sas", container_sas)
        yield


@contextlib.contextmanager
def keyless_profile() -> Iterator[KeylessProfile]:
    """Start Azurite (OAuth, HTTPS) and a token-only Batch emulator (HTTPS); trust their CA."""
    from azhpc.emulator.azurite import Azurite
    from azhpc.emulator.batch import BatchEmulator

    folder = Path(tempfile.mkdtemp(prefix="azhpc-entra-"))
    try:
        certificates = make_test_certificates(folder)
        with (
            trust_test_ca(certificates, folder),
            _azurite_compatible_sas(),
            Azurite(certificates=certificates) as azurite,
            BatchEmulator(certificates=certificates, auth="token") as batch,
        ):
            profile = KeylessProfile(certificates, azurite, batch)
            profile.create_container()
            yield profile
    finally:
        shutil.rmtree(folder, ignore_errors=True)
