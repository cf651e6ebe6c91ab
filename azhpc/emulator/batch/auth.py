"""Batch authentication, checked the way the Batch service checks it: SharedKey, or
Microsoft Entra ID bearer tokens (:func:`check_bearer`) on an account without shared keys.

The string to sign (``azure.batch._patch.BatchSharedKeyAuthPolicy``, and the Batch REST
docs "Authenticate requests to the Azure Batch service")::

    VERB\\n
    Content-Encoding\\n Content-Language\\n Content-Length\\n Content-MD5\\n Content-Type\\n
    Date\\n If-Modified-Since\\n If-Match\\n If-None-Match\\n If-Unmodified-Since\\n Range\\n
    ocp-*:value\\n            (every ocp- header, lower-cased name, sorted)
    /account/path           (the path as sent, still percent-encoded)
    \\nname:value            (each query parameter, decoded, sorted by name, first value)

Content-Length is ``0`` when absent on anything but GET/HEAD. The signature is
``base64(HMAC-SHA256(base64decode(key), string_to_sign))`` in
``Authorization: SharedKey account:signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from typing import Any

from azhpc.emulator.batch.model import ApiError
from azhpc.emulator.tokens import BATCH_AUDIENCES, TokenError, read_token

__all__ = ["check_bearer", "check_shared_key", "string_to_sign"]

_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def string_to_sign(method: str, raw_url: str, headers: Mapping[str, str], account: str) -> str:
    """The canonical string a SharedKey signature covers, for a request as received."""
    lowered = {k.lower(): v for k, v in headers.items() if v}
    if method not in ("GET", "HEAD"):
        lowered.setdefault("content-length", "0")
    out = method + "\n" + "\n".join(lowered.get(h, "") for h in _SIGNED_HEADERS) + "\n"
    for name, value in sorted((k, v) for k, v in lowered.items() if "ocp-" in k):
        out += f"{name}:{value}\n"
    url = urllib.parse.urlsplit(raw_url)
    out += f"/{account}{url.path}"
    query = urllib.parse.parse_qs(url.query)
    for name in sorted(query):
        if query[name][0]:
            out += f"\n{name}:{query[name][0]}"
    return out


def _fail(detail: str) -> ApiError:
    err = ApiError(
        401,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header "
        "is formed correctly including the signature.",
    )
    err.detail = detail  # type: ignore[attr-defined]
    return err


def check_shared_key(
    method: str, raw_url: str, headers: Mapping[str, str], account: str, key: str
) -> None:
    """Accept a correctly signed request; raise a 401 ``AuthenticationFailed`` otherwise.

    Raises
    ------
    ApiError
        Missing or malformed ``Authorization``, another account, or a wrong signature.
    """
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, credential = authorization.partition(" ")
    if scheme != "SharedKey" or ":" not in credential:
        raise _fail("The Authorization header is missing or is not SharedKey.")
    name, _, signature = credential.partition(":")
    if name != account:
        raise _fail(f"The account {name!r} in the Authorization header is not this account.")
    digest = hmac.new(
        base64.b64decode(key),
        string_to_sign(method, raw_url, headers, account).encode("utf-8"),
        hashlib.sha256,
    ).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
        raise _fail("The MAC signature found in the HTTP request is not the same as any computed.")


def check_bearer(headers: Mapping[str, str], signing_key: bytes | None = None) -> dict[str, Any]:
    """Accept an ``Authorization: Bearer <jwt>`` for Batch; return its claims.

    SharedKey is refused, as by an account whose ``allowedAuthenticationModes`` leave it
    out. Error details never quote the token.

    Raises
    ------
    ApiError
        401 ``AuthenticationFailed``: SharedKey, no bearer token, or a token
        :func:`~azhpc.emulator.tokens.read_token` refuses (audience, issuer, lifetime,
        signature).
    """
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = authorization.partition(" ")
    if scheme == "SharedKey":
        raise _fail(
            "SharedKey authentication is not allowed on this account: its allowed "
            "authentication modes are Microsoft Entra ID (AAD) only."
        )
    if scheme != "Bearer" or not token:
        raise _fail("The Authorization header is missing or is not a Bearer token.")
    try:
        return read_token(token, BATCH_AUDIENCES, signing_key)
    except TokenError as error:
        raise _fail(str(error)) from None
