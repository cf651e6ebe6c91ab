"""Microsoft Entra ID stand-ins: a test token credential and the bearer-token check.

:class:`TestTokenCredential` follows azure-core's ``TokenCredential`` protocol
(``get_token(*scopes) -> AccessToken``) and mints JWTs shaped like Entra ID's v1 access
tokens: ``aud`` is the scope without ``/.default`` (``https://batch.core.windows.net/`` for
Batch, ``https://storage.azure.com`` for storage), ``iss`` is ``https://sts.windows.net/<tenant>/``,
with ``iat``, ``nbf`` and ``exp``. They are HMAC-SHA256 signed with the credential's own key.
Azurite's ``--oauth basic`` checks issuer, audience and lifetime but not the signature; the
Batch emulator (``batch/auth.py``, through :func:`read_token`) checks the same, and the
signature too when it is given the key.

Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = [
    "BATCH_AUDIENCES",
    "STORAGE_AUDIENCE",
    "TestAccessToken",
    "TestTokenCredential",
    "TokenError",
    "read_token",
]

#: The audiences Batch accepts (the resource with and without its trailing slash).
BATCH_AUDIENCES = ("https://batch.core.windows.net/", "https://batch.core.windows.net")
#: The storage audience (Azurite accepts it with or without the slash).
STORAGE_AUDIENCE = "https://storage.azure.com"
_ISSUER_PREFIX = "https://sts.windows.net/"


class TestAccessToken(NamedTuple):
    """azure-core's ``AccessToken`` shape (``token``, ``expires_on``) with a hidden token."""

    __test__ = False  # not a pytest test class

    token: str
    expires_on: int

    def __repr__(self) -> str:
        return f"TestAccessToken(token=<redacted>, expires_on={self.expires_on})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TestTokenCredential:
    """A ``TokenCredential`` that mints test JWTs locally: no network, no real identity.

    Parameters
    ----------
    lifetime
        Seconds each token is valid (negative: already expired, for tests).
    audience
        Force this ``aud`` claim whatever the scope (for tests of a wrong audience).
    tenant
        The tenant id in ``iss`` and ``tid``.
    signing_key
        The HMAC key; default: random per credential.

    Examples
    --------
    >>> credential = TestTokenCredential()
    >>> credential.get_token("https://storage.azure.com/.default").expires_on > 0
    True
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        lifetime: int = 3600,
        audience: str | None = None,
        tenant: str = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        signing_key: bytes | None = None,
    ) -> None:
        self.lifetime = lifetime
        self.audience = audience
        self.tenant = tenant
        self._key = signing_key or secrets.token_bytes(32)
        self.requests = 0

    def __repr__(self) -> str:
        return f"<TestTokenCredential tenant={self.tenant} lifetime={self.lifetime}s>"

    @property
    def signing_key(self) -> bytes:
        """The HMAC key (give it to the Batch emulator to check signatures)."""
        return self._key

    def get_token(self, *scopes: str, **kwargs: Any) -> TestAccessToken:
        """A token for ``scopes[0]`` (``<resource>/.default``); ``kwargs`` (claims, tenant_id,
        enable_cae) are accepted and ignored."""
        if not scopes:
            raise ValueError("get_token needs at least one scope")
        self.requests += 1
        now = int(time.time())
        resource = scopes[0].removesuffix(".default")
        if resource.endswith("//"):
            resource = resource[:-1]  # "https://batch.core.windows.net//.default"
        elif resource.endswith("/") and resource.count("/") == 3:
            resource = resource[:-1]  # "https://storage.azure.com/.default"
        claims = {
            "aud": self.audience or resource,
            "iss": f"{_ISSUER_PREFIX}{self.tenant}/",
            "iat": now,
            "nbf": now - 60,
            "exp": now + self.lifetime,
            "tid": self.tenant,
            "oid": "00000000-0000-0000-0000-00000000a2c1",
            "appid": "azhpc-tests",
            "ver": "1.0",
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return TestAccessToken(f"{header}.{body}.{_b64(signature)}", claims["exp"])

    def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> Any:
        """azure-core's ``SupportsTokenInfo`` form of :meth:`get_token`."""
        from azure.core.credentials import AccessTokenInfo

        token = self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> TestTokenCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TokenError(ValueError):
    """A bearer token that is refused; the message says why and never quotes the token."""


def read_token(
    token: str, audiences: Iterable[str], signing_key: bytes | None = None
) -> dict[str, Any]:
    """The claims of a JWT whose audience is one of ``audiences``, within its lifetime.

    Raises
    ------
    TokenError
        A malformed token, a wrong audience or issuer, outside its lifetime, or (with
        ``signing_key``) a bad signature.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("The bearer token is not a JWT.")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error):
        raise TokenError("The bearer token is not a JWT.") from None
    if not isinstance(claims, dict):
        raise TokenError("The bearer token is not a JWT.")
    if signing_key is not None:
        expected = hmac.new(signing_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
        if not hmac.compare_digest(_b64(expected.digest()), parts[2]):
            raise TokenError("The bearer token's signature is not valid.")
    now = time.time()
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
        raise TokenError("Lifetime validation failed. The token is expired.")
    if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 300:
        raise TokenError("Lifetime validation failed. The token is not yet valid.")
    if not str(claims.get("iss", "")).startswith(_ISSUER_PREFIX):
        raise TokenError("The bearer token's issuer is not Microsoft Entra ID.")
    if claims.get("aud") not in tuple(audiences):
        raise TokenError(f"The audience {claims.get('aud')!r} of the bearer token is not valid.")
    return claims
