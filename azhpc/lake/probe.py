"""The first contact with a lake's storage account: bad settings fail at once.

The storage SDK retries a request that could not be sent (connection refused, a name that does
not resolve) with long backoffs, 80 s and more in all: right for a lake that answered before
and hiccups, wrong for a first call whose endpoint is simply wrong. :func:`first_contact` makes
that first call once, with a short connect timeout and an overall deadline; if nothing answers
it raises :class:`~azhpc.errors.LakeUnreachableError` naming the endpoint. If the account
answers with a transient error (5xx, 408, 429, a broken response), it is reachable: the call
runs again with the client's normal retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azhpc.config import redact
from azhpc.errors import LakeUnreachableError

if TYPE_CHECKING:
    from azhpc.lake.lake import Lake

__all__ = ["CONNECT_TIMEOUT", "PROBE_DEADLINE", "blob_endpoint", "first_contact"]

log = logging.getLogger("azhpc.lake")

#: Seconds the first call waits for a connection to the account.
CONNECT_TIMEOUT = 5.0
#: Seconds the first call may take in all (name resolution and TLS included).
PROBE_DEADLINE = 10.0
#: HTTP statuses of an account that answered but asks to be tried again.
_TRANSIENT = frozenset({408, 429})


def blob_endpoint(service_client: Any) -> str:
    """The Blob endpoint a service client talks to, without its query (a SAS stays out)."""
    url = urlsplit(str(getattr(service_client, "url", "")))
    return f"{url.scheme}://{url.netloc}{url.path}".rstrip("/") if url.netloc else "?"


def first_contact(lake: Lake, call: Callable[..., Any]) -> Any:
    """Run the SDK coroutine function ``call`` as a lake's first request; return its result.

    Parameters
    ----------
    lake
        An ``emulated`` or ``azure`` lake.
    call
        An async method of one of its SDK clients (``get_container_properties``, say); it
        must take azure-core's per-call ``retry_total`` and ``connection_timeout``.

    Raises
    ------
    LakeUnreachableError
        No answer within :data:`CONNECT_TIMEOUT` / :data:`PROBE_DEADLINE` seconds: the message
        names the endpoint and the setting to check.
    """
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
    from fsspec.asyn import sync

    loop = lake._blob.loop
    try:
        return sync(
            loop, call, retry_total=0, connection_timeout=CONNECT_TIMEOUT, timeout=PROBE_DEADLINE
        )
    except ServiceRequestError as error:  # nothing answered (refused, no such host, timeout)
        raise _unreachable(lake, type(error).__name__, str(error)) from None
    except TimeoutError:  # fsspec's FSTimeoutError: the deadline passed
        raise _unreachable(lake, "no answer", f"within {PROBE_DEADLINE:g} s") from None
    except ServiceResponseError as error:
        log.info("the lake's first request failed (%s); retrying", type(error).__name__)
    except HttpResponseError as error:
        status = error.status_code or 0
        if status < 500 and status not in _TRANSIENT:
            raise
        log.info("the lake answered HTTP %s to its first request; retrying", status)
    return sync(loop, call)


def _unreachable(lake: Lake, what: str, detail: str) -> LakeUnreachableError:
    s = lake.settings
    endpoint = blob_endpoint(lake._blob.service_client)
    setting = "connection_string" if s.connection_string else (
        "blob_endpoint" if s.blob_endpoint else "account_name"
    )  # fmt: skip
    secrets = [*s.secrets()]
    if lake.emulator is not None:
        secrets.append(lake.emulator.connection_string)
    first_line = redact(detail.splitlines()[0] if detail else "", *secrets)
    return LakeUnreachableError(
        f"the {s.name!r} profile ({lake.profile}), account {lake.account_name!r} could not be "
        f"reached: nothing answered at {endpoint} ({what}: {first_line}); check {setting}: "
        f"{s.where(setting)}, "
        "that the account exists and its endpoint is spelled right, and that this machine "
        "reaches it (network, proxy, firewall)",
        profile=s.name,
        setting=setting,
    )
