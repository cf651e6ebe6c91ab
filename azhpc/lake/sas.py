"""Narrowly scoped SAS URLs to lake blobs, for Batch nodes, valid for as long as a job lasts.

Batch nodes download task inputs (ResourceFiles) and upload outcomes (OutputFiles) over plain
HTTPS with a SAS URL each: read-only on the one blob a task reads, create/write-only on the
container it writes into. The URLs are baked into the tasks when they are added, and a task may
wait in the queue, or be retried or requeued, long after that: so they stay valid for as long
as a job may reasonably last, :data:`DEFAULT_LIFETIME` (almost 7 days). With an account key
(Azurite, or an ``azure`` profile with a key or connection string) the SAS is signed with the
key; with an Azure AD credential it is a *user delegation* SAS signed with a key Azure hands
out for that purpose, which lives at most 7 days: a job whose tasks start later than that needs
a pool with a managed identity instead.

The URLs are secrets: they go into Batch requests and nowhere else (never a repr, a log line
or an error message).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

from azhpc.errors import ConfigError

if TYPE_CHECKING:
    from azhpc.lake.lake import Lake

__all__ = ["SasSigner"]

#: The longest a user delegation key may live: "The end time for the user delegation key. Must
#: be within 7 days of the current time" (Get User Delegation Key, learn.microsoft.com).
DELEGATION_KEY_MAX = dt.timedelta(days=7)
#: How long a SAS handed to a Batch node stays valid: as long as the user delegation key that
#: signs it can live, less the hour of slack that key gets (see ``_signing``) and the half hour
#: before its expiry at which it is renewed. Tasks are added with their SAS URLs and may be
#: queued, retried or requeued for days; an 8-hour SAS failed them.
DEFAULT_LIFETIME = DELEGATION_KEY_MAX - dt.timedelta(hours=2)
#: Renew user delegation keys and cached container URLs this long before they expire.
_MARGIN = dt.timedelta(minutes=30)


class SasSigner:
    """Makes SAS URLs for blobs of one lake's container.

    Parameters
    ----------
    lake
        An ``emulated`` or ``azure`` lake (blob storage).
    lifetime
        How long each SAS is valid (at most :data:`DEFAULT_LIFETIME`, the default).

    Raises
    ------
    ConfigError
        The lake is a local folder, or ``lifetime`` is longer than :data:`DEFAULT_LIFETIME`.
    """

    def __init__(self, lake: Lake, *, lifetime: dt.timedelta = DEFAULT_LIFETIME) -> None:
        if lifetime > DEFAULT_LIFETIME:
            raise ConfigError(
                f"a SAS for Batch nodes can live at most {DEFAULT_LIFETIME} (a user delegation "
                f"key lives at most 7 days), not {lifetime}; give a shorter lifetime"
            )
        if lake.is_local:
            raise ConfigError(
                "Batch nodes read the lake over HTTPS: the local profile's folder cannot be "
                "used with Batch; connect to the 'emulated' or 'azure' profile"
            )
        self._lake = lake
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._service: Any = None
        self._delegation: tuple[Any, dt.datetime] | None = None

    def __repr__(self) -> str:
        return f"<SasSigner container={self._lake.settings.container!r}>"

    @property
    def container(self) -> str:
        """The lake's container."""
        return self._lake.settings.container

    def _blob_service(self) -> Any:
        if self._service is None:
            from azure.storage.blob import BlobServiceClient

            options = self._lake.storage_options()
            if "connection_string" in options:
                self._service = BlobServiceClient.from_connection_string(
                    options["connection_string"]
                )
            else:
                settings = self._lake.settings
                url = (
                    settings.blob_endpoint
                    or f"https://{settings.account_name}.blob.core.windows.net"
                )
                if settings.account_key is not None:
                    credential: Any = {
                        "account_name": settings.account_name,
                        "account_key": settings.account_key.reveal(),
                    }
                elif settings.credential is not None:
                    credential = settings.credential.reveal()
                elif settings.sas_token is not None:
                    raise ConfigError(
                        f"the azure profile {settings.name!r} authenticates with a SAS token, "
                        "from which azhpc cannot make the narrower SAS that Batch "
                        "nodes need: use an account key, a connection string or an Azure AD "
                        "credential (DefaultAzureCredential) for Batch"
                    )
                else:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                self._service = BlobServiceClient(url, credential=credential)
        return self._service

    def _signing(self) -> dict[str, Any]:
        """``account_key=`` or ``user_delegation_key=`` for the azure-storage-blob SAS helpers."""
        service = self._blob_service()
        key = getattr(service.credential, "account_key", None)
        if key:
            return {"account_key": key}
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            if self._delegation is None or self._delegation[1] - _MARGIN < now + self._lifetime:
                expiry = now + self._lifetime + dt.timedelta(hours=1)
                delegation = service.get_user_delegation_key(now - dt.timedelta(minutes=5), expiry)
                self._delegation = (delegation, expiry)
            return {"user_delegation_key": self._delegation[0]}

    def _window(self) -> tuple[dt.datetime, dt.datetime]:
        now = dt.datetime.now(dt.UTC)
        return now - dt.timedelta(minutes=5), now + self._lifetime

    def blob_url(self, blob: str, *, write: bool = False) -> str:
        """A SAS URL of one blob of the container: read-only, or create/write-only."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        service = self._blob_service()
        start, expiry = self._window()
        permission = (
            BlobSasPermissions(create=True, write=True) if write else BlobSasPermissions(read=True)
        )
        token = generate_blob_sas(
            service.account_name,
            self.container,
            blob,
            permission=permission,
            start=start,
            expiry=expiry,
            **self._signing(),
        )
        from urllib.parse import quote

        return f"{service.url.rstrip('/')}/{self.container}/{quote(blob)}?{token}"

    def container_url(self, *, write: bool = True) -> str:
        """A SAS URL of the container: create/write-only (OutputFiles), or read/list-only."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        service = self._blob_service()
        start, expiry = self._window()
        permission = (
            ContainerSasPermissions(create=True, write=True)
            if write
            else ContainerSasPermissions(read=True, list=True)
        )
        token = generate_container_sas(
            service.account_name,
            self.container,
            permission=permission,
            start=start,
            expiry=expiry,
            **self._signing(),
        )
        return f"{service.url.rstrip('/')}/{self.container}?{token}"

    def close(self) -> None:
        """Release the blob service client."""
        if self._service is not None:
            self._service.close()
            self._service = None
