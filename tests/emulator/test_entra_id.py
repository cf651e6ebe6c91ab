"""Microsoft Entra ID, the way most real accounts are used: the Batch emulator over HTTPS with
a test CA, bearer tokens from a test credential, SharedKey refused; no token shown anywhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc.emulator.batch import BatchEmulator
from azhpc.emulator.certs import TestCertificates, make_test_certificates
from azhpc.emulator.tokens import TestAccessToken, TestTokenCredential

pytest.importorskip("azure.batch")
pytest.importorskip("cryptography")


class RecordingCredential(TestTokenCredential):
    """A test credential that remembers the tokens it minted (to look for them later)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.minted: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> TestAccessToken:
        token = super().get_token(*scopes, **kwargs)
        self.minted.append(token.token)
        return token


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    """A test CA and a loopback server certificate."""
    return make_test_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def trusted(certificates: TestCertificates, monkeypatch: pytest.MonkeyPatch) -> TestCertificates:
    """This test process (only) trusts the test CA: requests and the ssl module's defaults."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_file))
    return certificates


@pytest.fixture
def token_emulator(certificates: TestCertificates) -> Iterator[BatchEmulator]:
    """A Batch emulator over HTTPS that accepts Entra ID tokens only."""
    with BatchEmulator(certificates=certificates, auth="token") as emulator:
        yield emulator


def batch_client(emulator: BatchEmulator, credential: Any) -> Any:
    from azure.batch import BatchClient

    return BatchClient(endpoint=emulator.url, credential=credential)


def refusal(call: Any) -> Any:
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value


def test_make_test_certificates_server_certificate_names_loopback(certificates):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(certificates.cert_file).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert oct(certificates.key_file.stat().st_mode & 0o777) == "0o600"


def test_token_emulator_serves_https_to_a_token_credential(trusted, token_emulator):
    assert token_emulator.url.startswith("https://127.0.0.1:")
    credential = TestTokenCredential()
    assert list(batch_client(token_emulator, credential).list_pools()) == []
    assert credential.requests >= 1
    assert token_emulator.request_counts()["Pool_List"] == 1  # control API over HTTPS too


def test_token_emulator_refuses_a_token_for_another_audience(trusted, token_emulator):
    credential = TestTokenCredential(audience="https://storage.azure.com")
    error = refusal(lambda: list(batch_client(token_emulator, credential).list_pools()))
    assert error.status_code == 401
    assert error.error.code == "AuthenticationFailed"
    assert "audience" in str(error)


def test_token_emulator_refuses_an_expired_token(trusted, token_emulator):
    credential = TestTokenCredential(lifetime=-60)
    error = refusal(lambda: list(batch_client(token_emulator, credential).list_pools()))
    assert error.status_code == 401
    assert error.error.code == "AuthenticationFailed"
    assert "expired" in str(error)


def test_token_emulator_refuses_shared_key(trusted, token_emulator):
    from azure.core.credentials import AzureNamedKeyCredential

    key = AzureNamedKeyCredential(token_emulator.account_name, token_emulator.account_key)
    error = refusal(lambda: list(batch_client(token_emulator, key).list_pools()))
    assert error.status_code == 401
    assert error.error.code == "AuthenticationFailed"
    assert "SharedKey authentication is not allowed" in str(error)


def test_token_emulator_checks_the_signature_when_given_the_key(trusted, certificates):
    signer = TestTokenCredential()
    with BatchEmulator(
        certificates=certificates, auth="token", token_signing_key=signer.signing_key
    ) as emulator:
        assert list(batch_client(emulator, signer).list_pools()) == []
        error = refusal(lambda: list(batch_client(emulator, TestTokenCredential()).list_pools()))
        assert error.status_code == 401
        assert "signature" in str(error)


def test_token_emulator_with_an_untrusted_ca_fails_clearly(
    token_emulator, monkeypatch, tmp_path_factory
):
    from azhpc.backends.batch.account import BatchAccount, call_batch
    from azhpc.config import Secret
    from azhpc.errors import BatchUnreachableError

    other = make_test_certificates(tmp_path_factory.mktemp("other-ca"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca_file))
    account = BatchAccount(
        token_emulator.url, token_emulator.account_name, credential=Secret(TestTokenCredential())
    )
    with pytest.raises(BatchUnreachableError) as caught:
        call_batch(account, "list pools", lambda: list(account.client().list_pools()))
    assert "certificate" in str(caught.value)
    assert "REQUESTS_CA_BUNDLE" in str(caught.value)
    account.close()


def test_token_emulator_shows_no_token(trusted, token_emulator, caplog):
    from azhpc.backends.batch.account import BatchAccount, call_batch
    from azhpc.config import Secret
    from azhpc.errors import BatchAuthError

    caplog.set_level(logging.DEBUG)
    good, wrong = RecordingCredential(), RecordingCredential(audience="https://example.org/")
    shown: list[str] = []
    for credential in (good, wrong):
        account = BatchAccount(
            token_emulator.url, token_emulator.account_name, credential=Secret(credential)
        )
        try:
            call_batch(account, "list pools", lambda a=account: list(a.client().list_pools()))
        except BatchAuthError as error:
            shown += [str(error), repr(error)]
        shown += [repr(account), repr(credential), repr(credential.get_token("x/.default"))]
        account.close()
    shown += [caplog.text] + [r.getMessage() for r in caplog.records]
    text = "\n".join(shown)
    assert good.minted and wrong.minted
    for token in good.minted + wrong.minted:
        for part in token.split("."):
            assert part not in text


# -- the keyless profile: Azurite with OAuth over HTTPS, user delegation SAS -------------------


@pytest.fixture(scope="module")
def keyless() -> Iterator[Any]:
    """Azurite (``--oauth basic``, HTTPS) and a token-only Batch emulator; no keys anywhere."""
    from tests.conftest import batch_available
    from tests.entra_profile import keyless_profile

    if not batch_available():
        pytest.skip("needs azure-batch and Azurite (./dev test installs both)")
    with keyless_profile() as profile:
        yield profile


def test_azurite_oauth_refuses_a_token_for_another_audience(keyless):
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.storage.blob import BlobServiceClient

    credential = TestTokenCredential(audience="https://batch.core.windows.net/")
    with (
        BlobServiceClient(keyless.azurite.blob_endpoint, credential=credential) as service,
        pytest.raises((ClientAuthenticationError, HttpResponseError)) as caught,
    ):
        service.get_container_client("azhpc").get_container_properties()
    assert caught.value.status_code in (401, 403)


def test_keyless_lake_signs_sas_with_a_user_delegation_key(keyless):
    import urllib.request

    from azhpc.lake.sas import SasSigner

    with keyless.connect(backend="local", workers=1, progress=False) as session:
        assert session.settings.account_key is None and session.settings.connection_string is None
        session.lake.filesystem().pipe_file("/entra/hello.txt", b"hello")
        signer = SasSigner(session.lake)
        try:
            assert "user_delegation_key" in signer._signing()
            url = signer.blob_url("entra/hello.txt")
            assert url.startswith(keyless.azurite.blob_endpoint + "/azhpc/")
            assert "skoid=" in url  # a user delegation SAS names the signing identity
            with urllib.request.urlopen(url, timeout=30) as response:  # no token: the SAS only
                assert response.read() == b"hello"
        finally:
            signer.close()


def add_one(x: int) -> int:
    return x + 1


def test_keyless_profile_runs_jobs_end_to_end(keyless):
    with (
        keyless.connect(progress=False) as session,
        azhpc.Pool("entra", "Standard_D2s_v5", nodes=2, session=session, progress=False) as pool,
    ):
        assert pool.map(add_one, range(6), chunksize=1) == [1, 2, 3, 4, 5, 6]
    assert keyless.batch.request_counts()["Task_AddCollection"] >= 1


def fails(x: int) -> int:
    raise RuntimeError(f"task {x} failed on purpose")


def test_keyless_profile_shows_no_token_or_delegation_key(keyless, caplog, capsys):
    from azhpc.lake.sas import SasSigner

    caplog.set_level(logging.DEBUG)
    credential = RecordingCredential()
    keyless.credential = credential
    shown: list[str] = []
    with keyless.connect(progress=False) as session:
        signer = SasSigner(session.lake)
        signer.blob_url("x")  # fetches the user delegation key
        delegation_key = signer._signing()["user_delegation_key"].value
        with azhpc.Pool("entra-secrets", "Standard_D2s_v5", nodes=1, session=session) as pool:
            assert pool.map(add_one, [1], chunksize=1) == [2]
            with pytest.raises(azhpc.TaskError) as caught:
                pool.map(fails, [1], chunksize=1)
            shown += [str(caught.value), repr(caught.value)]
            shown += [repr(o) for o in (pool, pool.backend, pool.batch_pool, pool.backend.account)]
        shown += [repr(o) for o in (session, session.lake, session.store, session.settings)]
        shown += [repr(signer), repr(session.lake.storage_options()), repr(credential)]
        signer.close()
    out = capsys.readouterr()
    shown += [out.out, out.err, caplog.text] + [r.getMessage() for r in caplog.records]
    text = "\n".join(shown)
    assert credential.minted
    for token in credential.minted:
        assert token.split(".")[1] not in text and token.split(".")[2] not in text
    assert delegation_key not in text
