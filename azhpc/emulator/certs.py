"""A throw-away certificate authority and a loopback server certificate, made on demand.

The emulators serve HTTPS with a server certificate for ``127.0.0.1`` / ``localhost`` (a
subject alternative name with the IP address, as TLS clients require) signed by a test CA
that only the test process trusts: point ``REQUESTS_CA_BUNDLE`` (``requests``, so
azure-core's default transport) and ``SSL_CERT_FILE`` (``ssl.create_default_context``, so
aiohttp and adlfs) at :attr:`TestCertificates.ca_file`.

``cryptography`` is imported inside :func:`make_test_certificates` only, so the rest of the
emulator layer stays standard-library only.

Examples
--------
>>> certs = make_test_certificates("/tmp/azhpc-certs")           # doctest: +SKIP
>>> certs.server_context()                                        # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TestCertificates", "make_test_certificates"]


@dataclass(frozen=True)
class TestCertificates:
    """The PEM files of a test CA and of a loopback server certificate it signed.

    Attributes
    ----------
    ca_file : Path
        The CA certificate (what clients trust).
    cert_file : Path
        The server certificate (``127.0.0.1``, ``::1``, ``localhost``).
    key_file : Path
        The server's private key (unencrypted PEM, mode 0600).
    """

    __test__ = False  # not a pytest test class

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context with the server certificate and key loaded."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def make_test_certificates(folder: str | Path, *, days: int = 2) -> TestCertificates:
    """Make a CA and a server certificate for the loopback addresses in ``folder``.

    Parameters
    ----------
    folder
        Where the PEM files go (created if missing).
    days
        How long the certificates are valid.

    Returns
    -------
    TestCertificates
        The three PEM files.

    Raises
    ------
    ImportError
        ``cryptography`` is not installed (it comes with ``azhpc[azure]``).
    """
    import ipaddress

    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as error:  # pragma: no cover - cryptography is in the azure extra
        raise ImportError(
            "test certificates need cryptography: pip install 'azhpc[azure]'"
        ) from error

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azhpc test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    certs = TestCertificates(out / "ca.pem", out / "server.pem", out / "server-key.pem")
    certs.ca_file.write_bytes(ca_cert.public_bytes(pem))
    certs.cert_file.write_bytes(server_cert.public_bytes(pem))
    certs.key_file.touch(mode=0o600)
    certs.key_file.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return certs
