"""A Batch account: where its service is, how to authenticate, and errors in azhpc's terms.

The ``azure-batch`` SDK is imported when a client is first made, never at ``import azhpc``.
Keys and credentials are held as :class:`~azhpc.config.Secret` and never shown; SDK errors
are turned into :class:`BatchError` subclasses whose messages name the setting to fix and
carry no URL (SAS URLs in task definitions must not leak through an error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from azhpc.config import Secret
from azhpc.errors import AzhpcError, BatchAuthError, BatchError, BatchUnreachableError

if TYPE_CHECKING:
    from azhpc.config import Settings

__all__ = [
    "BatchAccount",
    "BatchAuthError",
    "BatchError",
    "BatchUnreachableError",
    "account_from_settings",
    "call_batch",
]

T = TypeVar("T")


@dataclass
class BatchAccount:
    """Where a Batch account's service is and how to authenticate to it.

    Parameters
    ----------
    url
        The account endpoint (``https://<account>.<region>.batch.azure.com``, or the emulator's
        ``http://127.0.0.1:<port>``).
    account_name
        The account's name.
    key
        Its shared key (SharedKey authentication), or ``None`` to use ``credential``.
    credential
        An azure-identity token credential (``None`` with no key: ``DefaultAzureCredential``).
    emulator
        The in-process :class:`~azhpc.emulator.BatchEmulator` behind ``url``, if any (for fault
        injection and request counts).
    where
        Where the key came from, for messages (``"the emulator"``, ``"AZHPC_BATCH_ACCOUNT_KEY"``).
    """

    url: str
    account_name: str
    key: Secret | None = None
    credential: Secret | None = None
    emulator: Any = None
    where: str = "batch_account_key"
    _client: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __repr__(self) -> str:
        auth = "key" if self.key is not None else "credential"
        return f"<BatchAccount {self.account_name!r} at {self.url!r} ({auth})>"

    @property
    def emulated(self) -> bool:
        """Whether the service is azhpc's Batch emulator."""
        return self.emulator is not None or self.url.split("//", 1)[-1].startswith("127.0.0.1:")

    def client(self) -> Any:
        """The account's ``azure.batch.BatchClient`` (made once)."""
        with self._lock:
            if self._client is None:
                try:
                    from azure.batch import BatchClient
                except ImportError as error:
                    raise AzhpcError(
                        "the Batch backend needs azure-batch: pip install 'azhpc[azure]'"
                    ) from error
                if self.key is not None:
                    from azure.core.credentials import AzureNamedKeyCredential

                    credential: Any = AzureNamedKeyCredential(self.account_name, self.key.reveal())
                elif self.credential is not None:
                    credential = self.credential.reveal()
                else:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                self._client = BatchClient(endpoint=self.url, credential=credential)
            return self._client

    def close(self) -> None:
        """Close the client's connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def account_from_settings(settings: Settings) -> BatchAccount:
    """The Batch account of an ``azure`` profile whose ``batch_url`` is set.

    The account's name is ``batch_account_name``, else the URL's first label; it
    authenticates with ``batch_account_key``, else ``credential``, else
    ``DefaultAzureCredential``.
    """
    url = str(settings.batch_url).rstrip("/")
    return BatchAccount(
        url,
        settings.batch_account_name or url.split("//", 1)[-1].split(".", 1)[0],
        key=settings.batch_account_key,
        credential=settings.credential,
        where=settings.where("batch_account_key"),
    )


def call_batch(account: BatchAccount, what: str, call: Callable[[], T]) -> T:
    """Run an SDK call; turn its errors into :class:`BatchError` subclasses.

    Parameters
    ----------
    account
        The account (for messages).
    what
        What the call does, for the message (``"create pool 'p'"``).
    call
        The SDK call.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    try:
        return call()
    except ClientAuthenticationError:
        raise _auth_error(account, what) from None  # SDK errors can quote SAS URLs: not chained
    except HttpResponseError as error:
        status = getattr(error, "status_code", None)
        if status in (401, 403):
            raise _auth_error(account, what) from None  # SDK errors can quote SAS URLs: not chained
        code = getattr(getattr(error, "error", None), "code", None)
        message = getattr(getattr(error, "error", None), "message", None) or error.reason
        first_line = str(message or "").splitlines()[0] if message else ""
        raise BatchError(
            f"Batch could not {what}: {code or status}: {first_line}", code=code
        ) from None  # SDK errors can quote SAS URLs: not chained
    except ServiceRequestError as error:
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            raise BatchUnreachableError(
                f"the TLS certificate of the Batch account {account.account_name!r} at "
                f"{account.url} is not trusted (trying to {what}): its certificate authority "
                "is not in this machine's trust store; for a private or test CA set "
                "REQUESTS_CA_BUNDLE and SSL_CERT_FILE to its PEM file"
            ) from None  # SDK errors can quote SAS URLs: not chained
        raise BatchUnreachableError(
            f"cannot reach the Batch account {account.account_name!r} at {account.url} to "
            f"{what} ({type(error).__name__}); check the network and the account URL"
            + (" (is the Batch emulator still running?)" if account.emulated else "")
        ) from None  # SDK errors can quote SAS URLs: not chained


def _auth_error(account: BatchAccount, what: str) -> BatchAuthError:
    return BatchAuthError(
        f"the Batch account {account.account_name!r} refused the credentials while trying to "
        f"{what} (HTTP 401/403): check the account key ({account.where}) or, with Azure AD, "
        "that your identity has a Batch role on the account",
        code="AuthenticationFailed",
    )
