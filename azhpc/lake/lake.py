"""The :class:`Lake` of a session: one fsspec filesystem, its URLs and its storage options."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from azhpc.config import Secret, Settings, redact
from azhpc.errors import ConfigError, LakeAuthError, LakeError, LakeUnreachableError
from azhpc.lake.moves import Rename, detect_hierarchical_namespace, rename
from azhpc.lake.paths import confined, lake_path, relative

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from azhpc.emulator.azurite import Azurite
    from azhpc.lake.progress import TransferCounter
    from azhpc.lake.rooted import RootedFileSystem

__all__ = ["Lake", "Rename", "StorageOptions"]

log = logging.getLogger("azhpc.lake")

F = TypeVar("F", bound=Callable[..., Any])


class StorageOptions(dict):
    """The ``storage_options`` dict for pandas/pyarrow/duckdb; its ``repr`` hides secrets."""

    _SECRET_KEYS = ("account_key", "connection_string", "sas_token", "credential")

    def __repr__(self) -> str:
        shown = {k: ("***" if k in self._SECRET_KEYS else v) for k, v in self.items()}
        return f"StorageOptions({shown!r})"

    __str__ = __repr__


def _translated(method: F) -> F:
    """Turn SDK errors of ``method`` into lake errors that name the setting to fix."""

    @functools.wraps(method)
    def wrapper(self: Lake, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (LakeError, ConfigError, FileNotFoundError, FileExistsError, IsADirectoryError):
            raise
        except Exception as error:
            better = self._translate(error)
            if better is None:
                raise
            raise better from None

    return wrapper  # type: ignore[return-value]


class Lake:
    """A session's Data Lake: a local folder, Azurite, or ADLS Gen2 / Blob Storage.

    Paths are lake paths (``/raw/2024/x.parquet``) on every profile. Use :meth:`url` plus
    :meth:`storage_options` with pandas/pyarrow/duckdb, :meth:`filesystem` for anything fsspec
    does, and the thin helpers (:meth:`put`, :meth:`get`, :meth:`ls`, :meth:`open`,
    :meth:`exists`, :meth:`rm`, :meth:`rename`) for the rest. Azure SDKs are imported on first
    use.

    Parameters
    ----------
    settings
        The profile's settings (:func:`azhpc.config.resolve_settings`).
    emulator
        ``emulated`` profile: the running Azurite this lake uses; it is stopped by
        :meth:`close` when ``owns_emulator`` is true.
    owns_emulator
        Whether :meth:`close` stops ``emulator``.

    Examples
    --------
    >>> lake = Lake(resolve_settings("local", lake_root="/tmp/lake"))   # doctest: +SKIP
    >>> df.to_parquet(lake.url("/raw/x.parquet"), storage_options=lake.storage_options())
    """

    def __init__(
        self, settings: Settings, *, emulator: Azurite | None = None, owns_emulator: bool = False
    ) -> None:
        if settings.profile == "emulated" and emulator is None:
            raise ConfigError("the emulated lake needs a running Azurite (azhpc.emulator.Azurite)")
        if settings.profile == "azure" and not (
            settings.account_name or settings.connection_string
        ):
            raise ConfigError(
                f"the azure profile {settings.name!r} needs the storage account: set "
                f"account_name ({settings.where('account_name')}), or give a connection_string"
            )
        self.settings = settings
        self.emulator = emulator
        self.owns_emulator = owns_emulator
        self._fs: AbstractFileSystem | None = None
        self._options: StorageOptions | None = None
        self._hns: bool | None = None
        self._closed = False

    # -- identity ---------------------------------------------------------------------------------

    @property
    def profile(self) -> str:
        """The profile's kind: ``local``, ``emulated`` or ``azure``."""
        return self.settings.profile

    @property
    def is_local(self) -> bool:
        """True for the ``local`` profile's folder."""
        return self.profile == "local"

    @property
    def root(self) -> str:
        """The folder (``local``) or the container (``emulated``/``azure``) holding the lake."""
        if self.is_local:
            return str(Path(self.settings.lake_root).expanduser().resolve())
        return self.settings.container

    @property
    def account_name(self) -> str | None:
        """The storage account (``devstoreaccount1`` on Azurite), or ``None`` locally."""
        if self.emulator is not None:
            return self.emulator.account_name
        if self.is_local:
            return None
        return self.settings.account_name or _connection_field(
            self.settings.connection_string, "AccountName"
        )

    def __repr__(self) -> str:
        where = self.root if self.is_local else self.url("/")
        account = f" account={self.account_name!r}" if self.account_name else ""
        state = " (closed)" if self._closed else ""
        return f"<azhpc.Lake profile={self.settings.name!r} root={where!r}{account}{state}>"

    # -- what pandas, pyarrow, duckdb and fsspec need ---------------------------------------------

    def url(self, path: str = "/") -> str:
        """Where pandas, pyarrow, duckdb and fsspec find a lake path on this profile.

        Parameters
        ----------
        path
            A lake path, e.g. ``/raw/2024/x.parquet``.

        Returns
        -------
        str
            ``abfs://<container>/raw/2024/x.parquet`` on ``emulated``/``azure``. Locally the
            absolute file path ``<root>/raw/2024/x.parquet`` (not a ``file://`` URL: pandas
            opens ``file://`` URLs with urllib, read-only, so ``to_csv`` could not write to
            them); its parent folder is created, since folders are implicit in blob storage
            and pandas/pyarrow writers do not create them.

        Raises
        ------
        LakePathError
            The path climbs out of the lake with ``..``, is a URL already, or (locally) leads
            out of the lake folder through a symbolic link.
        """
        rel = relative(path)
        if self.is_local:
            target = Path(self.root, rel)
            confined(self.root, str(target), path)
            target.parent.mkdir(parents=True, exist_ok=True)
            return str(target)
        return f"abfs://{self.settings.container}/{rel}"

    def storage_options(self) -> StorageOptions:
        """Options for ``storage_options=`` of pandas/pyarrow, and for ``fsspec.filesystem``.

        Returns
        -------
        StorageOptions
            A dict (its repr hides secrets); empty locally.

        Examples
        --------
        >>> pd.read_parquet(lake.url("/raw/x.parquet"), storage_options=lake.storage_options())
        ... # doctest: +SKIP
        """
        if self._options is None:
            self._options = StorageOptions(self._build_options())
        return StorageOptions(self._options)

    def _build_options(self) -> dict[str, Any]:
        s = self.settings
        if self.is_local:
            return {}
        if self.emulator is not None:
            return {"connection_string": self.emulator.connection_string}
        if s.connection_string is not None:
            return {"connection_string": s.connection_string.reveal()}
        options: dict[str, Any] = {"account_name": s.account_name}
        if s.blob_endpoint:  # adlfs addresses the account as https://{account_host}
            options["account_host"] = s.blob_endpoint.split("//", 1)[-1].rstrip("/")
        if s.credential is not None:
            options["credential"] = _async_credential(s.credential.reveal())
        elif s.account_key is not None:
            options["account_key"] = s.account_key.reveal()
        elif s.sas_token is not None:
            options["sas_token"] = s.sas_token.reveal()
        else:
            options["anon"] = False  # adlfs then uses azure-identity's DefaultAzureCredential
        return options

    def filesystem(self) -> RootedFileSystem:
        """The lake as an fsspec filesystem whose paths are lake paths, on every profile.

        Returns
        -------
        RootedFileSystem
            An fsspec ``DirFileSystem`` rooted at the lake: ``fs.open("/raw/x.csv")``,
            ``fs.ls("/raw")`` gives ``["/raw/x.csv"]``, and ``..`` cannot climb out. It wraps
            this machine's file system (``local``) or adlfs's ``AzureBlobFileSystem`` with the
            container as the root (``emulated``/``azure``; the very instance pandas gets from
            :meth:`storage_options`, reachable as ``fs.fs``).

        Raises
        ------
        ImportError
            adlfs is not installed (``pip install 'azhpc[azure]'``).
        LakeError
            The lake is closed.
        """
        if self._closed:
            raise LakeError(f"the {self.settings.name!r} lake is closed", profile=self.profile)
        if self._fs is None:
            from azhpc.lake.rooted import (
                RootedFileSystem,  # lazy: fsspec, only when files are touched
            )

            self._fs = RootedFileSystem(self.root, fs=self._storage())
        return self._fs

    def _storage(self) -> AbstractFileSystem | None:
        """The filesystem under the root: ``None`` (this machine's) locally, else adlfs."""
        if self.is_local:
            return None
        try:
            from adlfs import AzureBlobFileSystem
        except ImportError as error:
            raise ImportError(
                f"the {self.profile} profile's lake needs adlfs: pip install 'azhpc[azure]'"
            ) from error
        return self._call_sdk(lambda: AzureBlobFileSystem(**self.storage_options()))

    @property
    def _blob(self) -> Any:
        """adlfs's ``AzureBlobFileSystem`` under the lake (``emulated``/``azure``)."""
        return self.filesystem().fs

    # -- helpers ----------------------------------------------------------------------------------

    @_translated
    def exists(self, path: str) -> bool:
        """Whether a file or folder exists at the lake path."""
        return self.filesystem().exists(path)

    @_translated
    def ls(self, path: str = "/", *, detail: bool = False) -> list[Any]:
        """The entries of a lake folder, as lake paths (or dicts with ``detail=True``).

        Raises
        ------
        FileNotFoundError
            No such folder.
        """
        fs = self.filesystem()
        entries = fs.ls(path, detail=True)
        if not entries and not fs.exists(path):
            raise FileNotFoundError(f"no such folder in the lake: {lake_path(path)}")
        entries = sorted(entries, key=lambda e: e["name"])
        return entries if detail else [entry["name"] for entry in entries]

    @_translated
    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open a lake file, as ``fsspec`` does (text modes take ``encoding``, ``newline``).

        Raises
        ------
        FileNotFoundError
            Reading a file that does not exist.
        """
        return self.filesystem().open(path, mode, **kwargs)

    @_translated
    def rm(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a folder with ``recursive=True``.

        Raises
        ------
        FileNotFoundError
            Nothing at that path.
        """
        fs = self.filesystem()
        if not fs.exists(path):
            raise FileNotFoundError(f"no such file or folder in the lake: {lake_path(path)}")
        fs.rm(path, recursive=recursive)
        fs.invalidate_cache()

    @_translated
    def put(
        self,
        local_path: str | os.PathLike[str],
        path: str,
        *,
        recursive: bool = False,
        progress: bool | None = None,
    ) -> TransferCounter:
        """Upload a local file (or folder, ``recursive=True``) to a lake path.

        Parameters
        ----------
        local_path
            The file or folder on this machine.
        path
            Where in the lake.
        recursive
            Upload a folder and everything in it.
        progress
            Show progress: ``True``, ``False``, or ``None`` for large transfers only.

        Returns
        -------
        TransferCounter
            Files and bytes moved, and how long it took.

        Raises
        ------
        FileNotFoundError
            ``local_path`` does not exist.
        """
        source = os.fspath(local_path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"no such local file or folder: {source}")
        return self._transfer("put", source, lake_path(path), recursive, progress, path)

    @_translated
    def get(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        recursive: bool = False,
        progress: bool | None = None,
    ) -> TransferCounter:
        """Download a lake file (or folder, ``recursive=True``) to this machine.

        Parameters and return value as :meth:`put`.

        Raises
        ------
        FileNotFoundError
            Nothing at the lake path.
        """
        if not self.filesystem().exists(path):
            raise FileNotFoundError(f"no such file or folder in the lake: {lake_path(path)}")
        return self._transfer(
            "get", lake_path(path), os.fspath(local_path), recursive, progress, path
        )

    def _transfer(
        self, kind: str, source: str, target: str, recursive: bool, progress: bool | None,
        shown: str,
    ) -> TransferCounter:  # fmt: skip
        from azhpc.lake.progress import (  # lazy: fsspec, only when files are touched
            TransferCounter,
            TransferProgress,
        )

        callback = TransferProgress(
            TransferCounter(description=f"{kind} {lake_path(shown)}"), show=progress
        )
        fs = self.filesystem()
        try:
            getattr(fs, kind)(source, target, recursive=recursive, callback=callback)
        finally:
            callback.close()
            if kind == "put":
                fs.invalidate_cache()
        counter = callback.counter
        log.debug("%s: %d files, %d bytes in %.2f s", counter.description,
                  counter.files_done, counter.bytes_done, counter.seconds)  # fmt: skip
        return counter

    @_translated
    def rename(self, source: str, target: str) -> Rename:
        """Move a file or folder to a new lake path.

        Atomic locally and on ADLS Gen2 accounts with a hierarchical namespace (the DFS
        rename). Where the DFS API is not served — Azurite, or a Blob Storage account without
        hierarchical namespace — the blob fallback copies every blob and then deletes the
        originals: not atomic, a reader may see both or half.

        Returns
        -------
        Rename
            Which way it was done.

        Raises
        ------
        FileNotFoundError
            ``source`` does not exist.
        FileExistsError
            ``target`` exists already.
        """

        return rename(self, source, target)

    @property
    def hierarchical_namespace(self) -> bool:
        """Whether the account has a hierarchical namespace (ADLS Gen2 DFS API); False locally.

        Asked once (``get_account_information``); when the account does not say, ``False``.
        """
        if self._hns is None:
            self._hns = False if self.is_local else detect_hierarchical_namespace(self)
        return self._hns

    # -- connection checks ------------------------------------------------------------------------

    @_translated
    def check(self) -> None:
        """Make one cheap authenticated call; raise a clear error if the lake is unusable.

        Raises
        ------
        LakeAuthError
            The account refused the credentials.
        LakeUnreachableError
            Nothing answered at the account's endpoint within a few seconds (this first call
            is not retried the way later ones are; see :mod:`azhpc.lake.probe`).
        FileNotFoundError
            The container does not exist.
        """
        if self.is_local:
            return
        client = self._blob.service_client.get_container_client(self.settings.container)
        from azure.core.exceptions import ResourceNotFoundError

        from azhpc.lake.probe import first_contact

        try:
            first_contact(self, client.get_container_properties)
        except ResourceNotFoundError:
            raise FileNotFoundError(
                f"container {self.settings.container!r} does not exist in account "
                f"{self.account_name!r} ({self.settings.name!r} profile); create it, or fix "
                f"container: {self.settings.where('container')}"
            ) from None

    @_translated
    def ensure_container(self) -> None:
        """Create the container (``emulated``/``azure``) or folder (``local``) if missing."""
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            return
        from azure.core.exceptions import ResourceExistsError

        from azhpc.lake.probe import first_contact

        client = self._blob.service_client.get_container_client(self.settings.container)
        try:
            first_contact(self, client.create_container)
        except ResourceExistsError:
            pass

    def _run(self, coroutine_function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an async SDK call on the filesystem's event loop and return its result."""
        from fsspec.asyn import sync

        return sync(self._blob.loop, coroutine_function, *args, **kwargs)

    def _call_sdk(self, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except Exception as error:
            better = self._translate(error)
            if better is None:
                raise
            raise better from None

    def _translate(self, error: BaseException) -> LakeError | None:
        """A lake error for an SDK error (auth, network, bad connection string), else ``None``."""
        if self.is_local:
            return None
        chain: list[BaseException] = []
        current: BaseException | None = error
        while current is not None and current not in chain:
            chain.append(current)
            current = current.__cause__ or current.__context__
        s = self.settings
        where = f"the {s.name!r} profile ({self.profile}), account {self.account_name!r}"
        secrets = [*s.secrets()]
        if self.emulator is not None:
            secrets.append(self.emulator.connection_string)
        for item in chain:
            module = type(item).__module__
            name = type(item).__name__
            if not module.startswith(("azure.", "aiohttp")):
                continue
            status = getattr(item, "status_code", None)
            code = getattr(item, "error_code", None)
            detail = redact(str(item).splitlines()[0] if str(item) else name, *secrets)
            if name == "ClientAuthenticationError" or status in (401, 403):
                setting = "account_key" if self.emulator is not None else s.auth
                how = (
                    "sign in (az login, a managed identity or AZURE_* variables) and grant the "
                    "identity the 'Storage Blob Data Contributor' role, or set account_key, "
                    "sas_token or credential"
                    if setting == "DefaultAzureCredential"
                    else f"check {setting}: {s.where(setting)}"
                )
                return LakeAuthError(
                    f"{where} refused the credentials (HTTP {status or '-'} {code or name}: "
                    f"{detail}); {how}",
                    profile=s.name, setting=setting, status=status, code=code,
                )  # fmt: skip
            if name in ("ServiceRequestError", "ServiceResponseError") or module.startswith(
                "aiohttp"
            ):
                setting = "connection_string" if s.connection_string else "account_name"
                return LakeUnreachableError(
                    f"{where} could not be reached ({name}: {detail}); check {setting}: "
                    f"{s.where(setting)}, and the network",
                    profile=s.name, setting=setting,
                )  # fmt: skip
        for item in chain:
            if isinstance(item, ValueError) and "unable to connect" in str(item):
                setting = "connection_string" if s.connection_string else s.auth
                return LakeAuthError(
                    f"{where}: the storage client could not be built "
                    f"({redact(str(item), *secrets)}); check {setting}: {s.where(setting)}",
                    profile=s.name, setting=setting,
                )  # fmt: skip
        return None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Forget the filesystem; stop the owned Azurite. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._fs = None
        if self.emulator is not None and self.owns_emulator:
            self.emulator.stop()


def _connection_field(secret: Secret | None, field: str) -> str | None:
    if secret is None:
        return None
    for part in str(secret.reveal()).split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == field.lower() and field.lower() != "accountkey":
            return value.strip()
    return None


class _ThreadedCredential:
    """An async view of a synchronous azure-identity credential (adlfs needs async ones)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _ThreadedCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<credential {type(self._credential).__name__}>"


def _async_credential(credential: Any) -> Any:
    get_token = getattr(credential, "get_token", None)
    if get_token is None:
        raise ConfigError(
            "credential must be an azure-identity credential (with get_token), e.g. "
            f"azure.identity.DefaultAzureCredential(); got {type(credential).__name__}"
        )
    if inspect.iscoroutinefunction(get_token):
        return credential
    return _ThreadedCredential(credential)
