"""``azhpc doctor``: check a profile's Azure setup before any money is spent.

Each check makes the cheapest request that proves one thing a Batch run needs, and reports
it on one line, with what to do when it fails (the setting, variable or config key to fix, or
the ``az`` command to run):

- **batch account**: the Batch account answers and accepts the key or the Entra ID identity
  (``list_pools``, one item);
- **batch images**: the images azhpc's pools use by default (Ubuntu Server 22.04, and
  Ubuntu-HPC 22.04 for MPI on RDMA sizes) are in the account's List Supported Images, with
  their node agent;
- **storage account**: the lake's account accepts the credentials and has the container;
- **container writable**: a small probe blob is written, read back and deleted;
- **SAS for nodes**: azhpc can sign the SAS Batch nodes download inputs and upload outcomes
  with (account key, or a user delegation key with Entra ID), and the probe reads through it;
- **clock**: this machine's clock is within :data:`MAX_CLOCK_SKEW` of the services' ``Date``
  header (SharedKey requests and SAS start times fail beyond that);
- **vm size X**: each size azhpc uses by default, and each size given, is one Azure still
  offers (the offline catalogue knows retired sizes).

A check that cannot run because an earlier one failed is reported as skipped. Nothing here
prints a secret: service messages go through :func:`azhpc.config.redact`.
"""

from __future__ import annotations

import datetime as dt
import secrets as random_tokens
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.account import BatchAccount, account_from_settings, call_batch
from azhpc.backends.batch.doctor_report import (
    MAX_CLOCK_SKEW,
    DoctorCheck,
    DoctorReport,
    check_clock,
    check_images,
    check_vm_size,
    skipped,
)
from azhpc.config import Secret, redact, resolve_settings
from azhpc.emulator.azurite import Azurite
from azhpc.emulator.batch import BatchEmulator
from azhpc.emulator.state import discover
from azhpc.errors import (
    AzhpcError,
    BatchAuthError,
    BatchUnreachableError,
    LakeError,
    LakeUnreachableError,
)
from azhpc.lake.lake import Lake
from azhpc.lake.sas import SasSigner
from azhpc.pools.spec import ImageReference

if TYPE_CHECKING:
    from azhpc.config import Settings

__all__ = [
    "DEFAULT_VM_SIZES",
    "MAX_CLOCK_SKEW",
    "DoctorCheck",
    "DoctorReport",
    "check_clock",
    "check_images",
    "check_vm_size",
    "doctor",
]

#: The VM sizes azhpc uses unless told otherwise: the ``emulated`` profile's own pool
#: (``factory.EMULATED_VM_SIZE``), notebook 03 and the docs' examples.
DEFAULT_VM_SIZES = ("Standard_D2s_v5",)

#: The lake folder the write probe goes to (deleted at once).
PROBE_FOLDER = "/.azhpc/doctor"


# -- the checks against the services -----------------------------------------------------------


@dataclass
class _Clock:
    """The first ``Date`` header a service sent, and this machine's time when it arrived."""

    server_date: str | None = None
    local: dt.datetime | None = None
    source: str = ""

    def record(self, date: str | None, source: str) -> None:
        if date and self.server_date is None:
            self.server_date, self.local, self.source = date, dt.datetime.now(dt.UTC), source

    def hook(self, source: str) -> Callable[[Any], None]:
        """An azure-core ``raw_response_hook`` that records the response's ``Date``."""
        return lambda response: self.record(response.http_response.headers.get("Date"), source)


class _Doctor:
    """The checks of one profile, with the clients they share; :meth:`run` makes the report."""

    def __init__(self, settings: Settings, vm_sizes: Sequence[str]) -> None:
        self.settings = settings
        self.vm_sizes = list(dict.fromkeys([*DEFAULT_VM_SIZES, *vm_sizes]))
        self.secrets: list[Any] = list(settings.secrets())
        self.clock = _Clock()
        self.lake: Lake | None = None
        self.account: BatchAccount | None = None
        self.emulators: list[Any] = []  # started here, stopped at the end
        self.probe: str | None = None  # the lake path of the probe blob, while it exists
        self.probe_data = b""
        self.where = ""  # emulated: which emulators answered

    def _text(self, error: BaseException) -> str:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return redact(first, *self.secrets)

    def _refused(self, error: BaseException) -> str:
        """A lake error's HTTP status and code (its message repeats the setting), or its text."""
        status, code = getattr(error, "status", None), getattr(error, "code", None)
        if status or code:
            return f"HTTP {status or '-'} {code or type(error).__name__}"
        return self._text(error)

    def _account_text(self) -> str:
        name = self.lake.account_name if self.lake is not None else None
        return f"account {name!r}" if name else "the storage account"

    # -- setting up -----------------------------------------------------------------------------

    def _open_emulated(self) -> None:
        running = discover()
        if running is not None:
            azurite = Azurite.attach(running.azurite_port)
            batch = BatchEmulator.attach(
                running.batch_url, running.batch_account_name, running.batch_account_key
            )
            where = "the emulators `azhpc emulator start` runs"
        else:
            azurite = Azurite().start()
            self.emulators.append(azurite)
            batch = BatchEmulator().start()
            self.emulators.append(batch)
            where = "emulators started for this check"
        self.secrets += [batch.account_key, azurite.connection_string]
        self.account = BatchAccount(
            batch.url,
            batch.account_name,
            key=Secret(batch.account_key),
            emulator=batch,
            where="the emulator's own key",
        )
        self.lake = Lake(self.settings, emulator=azurite)
        self.lake.ensure_container()
        self.where = where

    def close(self) -> None:
        if self.probe is not None and self.lake is not None:
            try:
                self.lake.rm(self.probe)
            except (AzhpcError, OSError):
                pass
        if self.lake is not None:
            self.lake.close()
        if self.account is not None:
            self.account.close()
        for emulator in reversed(self.emulators):
            emulator.stop()

    # -- the checks -----------------------------------------------------------------------------

    def run(self) -> DoctorReport:
        s = self.settings
        report = DoctorReport(s.name)
        add = report.checks.append
        if s.profile == "local":
            add(
                DoctorCheck(
                    "profile",
                    True,
                    "local: worker processes and a folder on this machine, nothing on Azure to "
                    "check (name an azure profile: azhpc doctor --profile NAME)",
                )
            )
            return report
        try:
            if s.profile == "emulated":
                self._open_emulated()
            else:
                self.lake = Lake(s)
                if s.batch_url:
                    self.account = account_from_settings(s)
        except AzhpcError as error:
            add(DoctorCheck("profile", False, self._text(error), "see the message"))
            return report
        batch_ok = self._batch_account(add)
        if batch_ok:
            add(self._batch_images())
        else:
            add(skipped("batch images", "the Batch account did not answer"))
        storage_ok = self._storage_account(add)
        if storage_ok:
            add(self._container_writable())
            add(self._sas())
        else:
            add(skipped("container writable", "the storage account did not answer"))
            add(skipped("SAS for nodes", "the storage account did not answer"))
        if self.clock.server_date is not None and self.clock.local is not None:
            add(check_clock(self.clock.server_date, self.clock.local, self.clock.source))
        else:
            add(skipped("clock", "no service answered, so there is no Date to compare with"))
        for size in self.vm_sizes:
            add(check_vm_size(size))
        return report

    def _batch_account(self, add: Callable[[DoctorCheck], None]) -> bool:
        s = self.settings
        account = self.account
        if account is None:
            add(
                DoctorCheck(
                    "batch account",
                    False,
                    f"the {s.name!r} profile names no Batch account",
                    f"set batch_url: {s.where('batch_url')}; the URL is `https://` + the "
                    "output of `az batch account show --name NAME --resource-group GROUP "
                    "--query accountEndpoint -o tsv`",
                )
            )
            return False
        hook = self.clock.hook("the Batch service")
        try:
            client = account.client()
            pools = call_batch(
                account,
                "list the pools",
                lambda: next(
                    iter(
                        client.list_pools(
                            max_results=1, select=["id"], raw_response_hook=hook
                        ).by_page()
                    )
                ),
            )
            listed = len(list(pools))
        except BatchAuthError:
            if account.key is not None:
                fix = (
                    f"check batch_account_key: {account.where}; the keys are in `az batch "
                    f"account keys list --name {account.account_name} --resource-group GROUP`"
                )
            else:
                fix = (
                    "sign in (`az login`) and give your identity a Batch data-plane role on the "
                    'account: `az role assignment create --role "Azure Batch Data Contributor" '
                    "--assignee YOU --scope BATCH_ACCOUNT_ID`; or set batch_account_key: "
                    f"{s.where('batch_account_key')}"
                )
            detail = (
                f"the Batch account {account.account_name!r} at {account.url} refused the "
                f"{'shared key' if account.key is not None else 'Entra ID identity'} "
                "(HTTP 401/403)"
            )
            add(DoctorCheck("batch account", False, detail, fix))
            return False
        except BatchUnreachableError as error:
            fix = (
                "restart the emulators: `azhpc emulator stop; azhpc emulator start`"
                if s.profile == "emulated"
                else f"check batch_url: {s.where('batch_url')}, and the network"
            )
            add(DoctorCheck("batch account", False, self._text(error), fix))
            return False
        except AzhpcError as error:
            add(DoctorCheck("batch account", False, self._text(error), "see the message"))
            return False
        auth = "shared key" if account.key is not None else "Entra ID"
        where = f"; {self.where}" if s.profile == "emulated" else ""
        add(
            DoctorCheck(
                "batch account",
                True,
                f"{account.account_name!r} at {account.url} answered ({auth}, "
                f"{'pools exist' if listed else 'no pools'}){where}",
            )
        )
        return True

    def _batch_images(self) -> DoctorCheck:
        account = self.account
        assert account is not None  # _batch_account passed
        wanted = [ImageReference.ubuntu_2204(), ImageReference.ubuntu_hpc_2204()]
        agents = sorted({image.node_agent_sku_id for image in wanted})
        query = " or ".join(f"nodeAgentSKUId eq '{agent}'" for agent in agents)
        try:
            images = call_batch(
                account,
                "list the supported images",
                lambda: list(account.client().list_supported_images(filter=query)),
            )
        except AzhpcError as error:
            return DoctorCheck("batch images", False, self._text(error), "see the message")
        return check_images(images, wanted)

    def _storage_account(self, add: Callable[[DoctorCheck], None]) -> bool:
        s = self.settings
        lake = self.lake
        assert lake is not None
        try:
            lake.check()
        except FileNotFoundError as error:
            add(
                DoctorCheck(
                    "storage account",
                    False,
                    self._text(error),
                    f"`az storage container create --account-name {lake.account_name} --name "
                    f"{s.container} --auth-mode login`, or set container: {s.where('container')}",
                )
            )
            return False
        except LakeError as error:
            setting = getattr(error, "setting", "") or s.auth
            if setting == "DefaultAzureCredential":
                fix = (
                    "sign in (`az login`) and give your identity 'Storage Blob Data "
                    "Contributor' on the storage account: `az role assignment create --role "
                    '"Storage Blob Data Contributor" --assignee YOU --scope STORAGE_ACCOUNT_ID`'
                )
            else:
                fix = f"check {setting}: {s.where(setting)}"
            detail = f"{self._account_text()} refused the credentials ({self._refused(error)})"
            if isinstance(error, LakeUnreachableError):
                detail = self._text(error)
            add(DoctorCheck("storage account", False, detail, fix))
            return False
        except (AzhpcError, OSError) as error:
            add(DoctorCheck("storage account", False, self._text(error), "see the message"))
            return False
        add(
            DoctorCheck(
                "storage account",
                True,
                f"{self._account_text()} accepted the credentials ({self._auth_text()}); "
                f"container {s.container!r} exists",
            )
        )
        return True

    def _auth_text(self) -> str:
        if self.settings.profile == "emulated":
            return "Azurite's development key"
        auth = self.settings.auth
        return "Entra ID: DefaultAzureCredential" if auth == "DefaultAzureCredential" else auth

    def _write_fix(self) -> str:
        s = self.settings
        if s.profile == "emulated":
            return "restart the emulators: `azhpc emulator stop; azhpc emulator start`"
        if s.auth in ("DefaultAzureCredential", "credential"):
            return (
                "give your identity 'Storage Blob Data Contributor' on the storage account (a "
                'Reader role cannot write): `az role assignment create --role "Storage Blob '
                'Data Contributor" --assignee YOU --scope STORAGE_ACCOUNT_ID`'
            )
        if s.auth == "sas_token" or _has_sas(s):
            setting = "sas_token" if s.auth == "sas_token" else "connection_string"
            return (
                f"the SAS must allow read, write, create, delete and list (sp=rwdlc): make a new "
                f"one and set {setting}: {s.where(setting)}"
            )
        return f"check {s.auth}: {s.where(s.auth)}"

    def _container_writable(self) -> DoctorCheck:
        lake = self.lake
        assert lake is not None
        path = f"{PROBE_FOLDER}/probe-{random_tokens.token_hex(6)}.txt"
        data = f"azhpc doctor probe {dt.datetime.now(dt.UTC).isoformat()}\n".encode()
        with tempfile.TemporaryDirectory(prefix="azhpc-doctor-") as folder:
            local = Path(folder, "probe.txt")
            local.write_bytes(data)
            try:
                lake.put(local, path, progress=False)
            except (AzhpcError, OSError) as error:
                return DoctorCheck(
                    "container writable",
                    False,
                    f"could not write a probe blob to container {self.settings.container!r} "
                    f"({self._refused(error)})",
                    self._write_fix(),
                )
            self.probe, self.probe_data = path, data
            back = Path(folder, "back.txt")
            try:
                lake.get(path, back, progress=False)
                read = back.read_bytes()
            except (AzhpcError, OSError) as error:
                return DoctorCheck(
                    "container writable",
                    False,
                    f"wrote a probe blob but could not read it back ({self._refused(error)})",
                    self._write_fix(),
                )
        if read != data:
            return DoctorCheck(
                "container writable",
                False,
                f"the probe blob read back differs from what was written ({len(read)} bytes "
                f"instead of {len(data)})",
                "check that nothing else writes to the container's /.azhpc folder",
            )
        return DoctorCheck(
            "container writable",
            True,
            f"wrote, read back and deleted {PROBE_FOLDER}/probe-*.txt ({len(data)} bytes)",
        )

    def _sas(self) -> DoctorCheck:
        lake = self.lake
        assert lake is not None
        s = self.settings
        signer = None
        try:
            signer = SasSigner(lake)
            container_url = signer.container_url(write=True)
            self.secrets.append(container_url)
            if self.probe is None:
                return DoctorCheck(
                    "SAS for nodes",
                    True,
                    "signed a write SAS for the container (no probe blob to read through one)",
                )
            url = signer.blob_url(self.probe.lstrip("/"))
            self.secrets.append(url)
            body = self._download(url)
        except urllib.error.HTTPError as error:
            self.clock.record(error.headers.get("Date"), "the storage service")
            return DoctorCheck(
                "SAS for nodes",
                False,
                f"a read SAS signed here was refused (HTTP {error.code} "
                f"{error.headers.get('x-ms-error-code') or error.reason})",
                "check this machine's clock (see the clock check) and, with Entra ID, that "
                "your identity may get user delegation keys ('Storage Blob Data Contributor' "
                "or 'Storage Blob Delegator' on the storage account)",
            )
        except urllib.error.URLError as error:
            return DoctorCheck(
                "SAS for nodes",
                False,
                f"signed a SAS, but could not read the probe blob through it ({error.reason})",
                "check that this machine reaches the storage account's blob endpoint over HTTPS",
            )
        except Exception as error:  # any SDK error is the finding itself
            if s.profile == "azure" and (s.auth == "sas_token" or _has_sas(s)):
                fix = (
                    "Batch nodes read and write the lake with SAS tokens that azhpc signs, which "
                    "a SAS cannot do: use account_key, a connection string with AccountKey, or "
                    "Entra ID (DefaultAzureCredential with 'Storage Blob Data Contributor')"
                )
            elif s.profile == "azure" and s.auth in ("DefaultAzureCredential", "credential"):
                fix = (
                    "your identity needs to get user delegation keys: `az role assignment "
                    'create --role "Storage Blob Data Contributor" --assignee YOU --scope '
                    "STORAGE_ACCOUNT_ID`"
                )
            else:
                fix = f"check {s.auth}: {s.where(s.auth)}"
            return DoctorCheck(
                "SAS for nodes", False, f"could not sign a SAS: {self._text(error)}", fix
            )
        finally:
            if signer is not None:
                signer.close()
            self._delete_probe()
        if body != self.probe_data:
            return DoctorCheck(
                "SAS for nodes",
                False,
                "the probe blob read through a SAS differs from what was written",
                "check that nothing else writes to the container's /.azhpc folder",
            )
        kind = "account key" if _signed_with_key(s) else "user delegation key"
        return DoctorCheck(
            "SAS for nodes", True, f"signed with the {kind}; the probe blob read through it"
        )

    def _download(self, url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=30) as response:
            self.clock.record(response.headers.get("Date"), "the storage service")
            return bytes(response.read())

    def _delete_probe(self) -> None:
        if self.probe is None or self.lake is None:
            return
        try:
            self.lake.rm(self.probe)
        except (AzhpcError, OSError):
            return
        self.probe = None


def _has_sas(settings: Settings) -> bool:
    text = settings.connection_string.reveal() if settings.connection_string else ""
    return "sharedaccesssignature=" in str(text).lower()


def _signed_with_key(settings: Settings) -> bool:
    if settings.profile == "emulated":
        return True
    if settings.account_key is not None:
        return True
    text = settings.connection_string.reveal() if settings.connection_string else ""
    return "accountkey=" in str(text).lower()


def doctor(profile: str | None = None, *, vm_sizes: Iterable[str] = ()) -> DoctorReport:
    """Check a profile's Azure setup before any money is spent.

    Checks that the Batch account and the storage account accept the credentials, that the
    container is writable (a probe blob is written, read back and deleted), that SAS for Batch
    nodes can be signed and work, that the default images and node agent are supported by the
    account, that the VM sizes are current, and that this machine's clock agrees with the
    services'. Nothing is created that costs money.

    Parameters
    ----------
    profile
        ``"emulated"``, ``"azure"`` or the name of a ``[profiles.NAME]`` table; default:
        ``AZHPC_PROFILE``, else the config file's ``default``, else ``"local"`` (which has
        nothing on Azure to check). ``emulated`` uses the emulators ``azhpc emulator start``
        runs, or starts its own for the duration of the checks.
    vm_sizes
        VM sizes to check besides azhpc's defaults (:data:`DEFAULT_VM_SIZES`).

    Returns
    -------
    DoctorReport
        One :class:`DoctorCheck` per check; ``report.ok`` says whether all passed, and
        ``print(report)`` shows one line per check with what to do on failure.

    Raises
    ------
    ConfigError
        The profile is unknown, or its settings are malformed (the message lists the valid
        ones).

    Examples
    --------
    >>> report = azhpc.doctor("azure", vm_sizes=["Standard_HB120rs_v3"])   # doctest: +SKIP
    >>> print(report)                                                       # doctest: +SKIP
    azhpc doctor: profile 'azure'
    ✔ batch account: 'contosobatch' at https://contosobatch.westeurope.batch.azure.com ...
    """
    settings = resolve_settings(profile)
    checks = _Doctor(settings, [str(size) for size in vm_sizes])
    try:
        return checks.run()
    finally:
        checks.close()
