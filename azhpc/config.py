"""Profiles and settings: from arguments, then ``AZHPC_*`` environment variables, then a TOML file.

Three kinds of profile exist (see ``docs/lake.md``):

``local``
    Worker processes on this machine; the lake is a folder (``lake_root``, default
    ``~/.azhpc/lake``). The embedded default: no configuration at all means ``local``.
``emulated``
    Azurite on 127.0.0.1 for the lake (started and stopped by the session).
``azure``
    Azure Data Lake Storage Gen2 / Blob Storage (``account_name``, ``container``) with
    ``DefaultAzureCredential``, or a credential object, an account key, a SAS token or a
    connection string.

Each setting is taken from the first of: the argument given to :func:`resolve_settings` (and
so to ``azhpc.connect``), its ``AZHPC_*`` environment variable, the chosen named profile of the
config file, the built-in default. The config file is ``AZHPC_CONFIG`` if set, else
``~/.config/azhpc/config.toml``::

    default = "mylake"            # the profile connect() uses when none is named

    [profiles.mylake]
    profile = "azure"             # the kind: local, emulated or azure
    account_name = "contosolake"
    container = "analytics"

    [profiles.local]              # customise the built-in local profile
    lake_root = "/data/lake"

Secrets (account keys, connection strings, SAS tokens, credential objects) are held in
:class:`Secret`, whose ``repr`` and ``str`` are redacted. No Azure SDK is imported here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azhpc.errors import ConfigError

__all__ = [
    "CONNECT_ARGUMENTS",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_LAKE_ROOT",
    "ENVIRONMENT",
    "PROFILES",
    "SECRET_SETTINGS",
    "Secret",
    "Settings",
    "config_path",
    "redact",
    "resolve_settings",
]

#: The kinds of profile.
PROFILES = ("local", "emulated", "azure")

#: Where the ``local`` profile's lake lives unless ``lake_root`` says otherwise.
DEFAULT_LAKE_ROOT = "~/.azhpc/lake"

#: The config file read unless ``AZHPC_CONFIG`` names another.
DEFAULT_CONFIG_PATH = "~/.config/azhpc/config.toml"

#: Settings holding secrets: wrapped in :class:`Secret`, never shown.
#: The settings :func:`azhpc.connect` takes as keyword arguments; the others (``batch_url``,
#: ``blob_endpoint``, ...) come only from ``AZHPC_*`` variables or the config file.
CONNECT_ARGUMENTS = (
    "lake_root",
    "account_name",
    "container",
    "account_key",
    "connection_string",
    "sas_token",
    "credential",
    "workers",
    "slots",
)

SECRET_SETTINGS = (
    "account_key",
    "connection_string",
    "sas_token",
    "credential",
    "batch_account_key",
)

#: Environment variable of each setting (``credential`` has none: it is an object).
ENVIRONMENT = {
    "profile": "AZHPC_PROFILE",
    "lake_root": "AZHPC_LAKE_ROOT",
    "account_name": "AZHPC_ACCOUNT_NAME",
    "blob_endpoint": "AZHPC_BLOB_ENDPOINT",
    "container": "AZHPC_CONTAINER",
    "account_key": "AZHPC_ACCOUNT_KEY",
    "connection_string": "AZHPC_CONNECTION_STRING",
    "sas_token": "AZHPC_SAS_TOKEN",
    "batch_url": "AZHPC_BATCH_URL",
    "batch_account_name": "AZHPC_BATCH_ACCOUNT_NAME",
    "batch_account_key": "AZHPC_BATCH_ACCOUNT_KEY",
    "workers": "AZHPC_WORKERS",
    "slots": "AZHPC_SLOTS",
}

_LAKE_SETTINGS = {
    "local": ("lake_root",),
    "emulated": ("container",),
    "azure": (
        "account_name",
        "blob_endpoint",
        "container",
        "batch_url",
        "batch_account_name",
        *SECRET_SETTINGS,
    ),
}

_REDACTED = "***"


class Secret:
    """A secret value (key, connection string, SAS token, credential) that never shows itself.

    ``repr()`` and ``str()`` are redacted; :meth:`reveal` returns the value for the code that
    must hand it to an SDK.

    Parameters
    ----------
    value
        The secret.

    Examples
    --------
    >>> Secret("abc")
    Secret('***')
    """

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> Any:
        """The secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_REDACTED!r})"

    def __str__(self) -> str:
        return _REDACTED

    def __format__(self, spec: str) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(type(self))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


_SECRET_PATTERNS = (
    re.compile(r"(?i)(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;\s'\"]+"),
    re.compile(r"(?i)([?&]sig)=[^&\s'\"]+"),
    re.compile(r"(?i)(Authorization:\s*)\S+(\s+\S+)?"),
)


def redact(text: str, *secrets: Any) -> str:
    """``text`` with secrets removed: the given ones, account keys, SAS signatures (``sig=``).

    Parameters
    ----------
    text
        A message, repr or log line.
    *secrets
        Values (or :class:`Secret` s) to remove wherever they appear.

    Returns
    -------
    str
        The text, each secret replaced by ``***``.
    """
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, _REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}={_REDACTED}", text)
    return text


@dataclasses.dataclass(frozen=True, repr=False)
class Settings:
    """The resolved settings of one profile.

    Attributes
    ----------
    profile : str
        The kind: ``"local"``, ``"emulated"`` or ``"azure"``.
    name : str
        The profile's name: the kind, or the name of the config file's table it came from.
    lake_root : str
        ``local``: the folder holding the lake (``~`` expanded).
    account_name : str or None
        ``azure``: the storage account.
    blob_endpoint : str or None
        ``azure``: the account's Blob endpoint when it is not
        ``https://<account_name>.blob.core.windows.net`` (a sovereign cloud, a private
        endpoint, or an emulator such as ``https://127.0.0.1:10000/devstoreaccount1``).
    container : str
        ``emulated``/``azure``: the container (ADLS Gen2 "file system") holding the lake.
    account_key, connection_string, sas_token, credential : Secret or None
        ``azure``: how to authenticate; none of them means ``DefaultAzureCredential``.
    batch_url, batch_account_name : str or None
        ``azure``: the Batch account's endpoint (``https://<name>.<region>.batch.azure.com``)
        and name (default: the URL's first label). Without ``batch_url`` the profile has no
        Batch compute.
    batch_account_key : Secret or None
        ``azure``: the Batch account's shared key; none means Azure AD (``credential``, else
        ``DefaultAzureCredential``).
    workers : int or None
        Worker processes of the local backend; ``None``: one per CPU core.
    slots : int
        Tasks each worker runs at once.
    sources : dict
        Where each setting not at its default came from (``argument``, ``environment``,
        or the config file and table); for messages.
    """

    profile: str = "local"
    name: str = "local"
    lake_root: str = DEFAULT_LAKE_ROOT
    account_name: str | None = None
    blob_endpoint: str | None = None
    container: str = "azhpc"
    account_key: Secret | None = None
    connection_string: Secret | None = None
    sas_token: Secret | None = None
    credential: Secret | None = None
    batch_url: str | None = None
    batch_account_name: str | None = None
    batch_account_key: Secret | None = None
    workers: int | None = None
    slots: int = 1
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        shown = [f"profile={self.profile!r}"]
        if self.name != self.profile:
            shown.append(f"name={self.name!r}")
        for field in ("lake_root", "account_name", "blob_endpoint", "container", "batch_url"):
            if field in _LAKE_SETTINGS[self.profile]:
                shown.append(f"{field}={getattr(self, field)!r}")
        for field in SECRET_SETTINGS:
            if getattr(self, field) is not None:
                shown.append(f"{field}={_REDACTED}")
        shown += [f"workers={self.workers!r}", f"slots={self.slots!r}"]
        return f"Settings({', '.join(shown)})"

    @property
    def auth(self) -> str:
        """The setting that authenticates on ``azure``, or ``"DefaultAzureCredential"``."""
        for field in ("connection_string", "credential", "account_key", "sas_token"):
            if getattr(self, field) is not None:
                return field
        return "DefaultAzureCredential"

    def where(self, setting: str) -> str:
        """How to change ``setting``: its argument, variable, and where it was found."""
        hints = [f"connect({setting}=...)"] if setting in CONNECT_ARGUMENTS else []
        if setting in ENVIRONMENT:
            hints.append(ENVIRONMENT[setting])
        hints.append(f"{setting} in [profiles.{self.name}] of {config_path()}")
        found = self.sources.get(setting)
        text = " or ".join(hints)
        return f"{text} (now from {found})" if found else text

    def secrets(self) -> tuple[Secret, ...]:
        """The secrets these settings hold (for :func:`redact`)."""
        found = (getattr(self, f) for f in SECRET_SETTINGS)
        return tuple(s for s in found if s is not None)


def _defaults() -> dict[str, Any]:
    return {
        f.name: f.default
        for f in dataclasses.fields(Settings)
        if f.name not in ("sources", "name") and f.default is not dataclasses.MISSING
    }


def valid_settings_text() -> str:
    """``name=default, ...`` for every setting, for error messages."""
    return ", ".join(f"{k}={v!r}" for k, v in _defaults().items())


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file: ``AZHPC_CONFIG`` if set, else ``~/.config/azhpc/config.toml``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("AZHPC_CONFIG") or DEFAULT_CONFIG_PATH).expanduser()


def _load_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    extra = set(data) - {"default", "profiles"}
    if extra:
        raise ConfigError(
            f"config file {path} has unknown top-level key(s) {', '.join(sorted(extra))}; "
            'it holds `default = "name"` and [profiles.NAME] tables'
        )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"config file {path}: profiles must be tables, [profiles.NAME]")
    return data


def _coerce(setting: str, value: Any, origin: str) -> Any:
    if setting in ("workers", "slots"):
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(
                    f"{setting} must be a whole number >= 1, got {value!r} from {origin}"
                ) from None
        if value is None and setting == "workers":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{setting} must be a whole number >= 1, got {value!r} from {origin}")
        return value
    if setting in SECRET_SETTINGS:
        return None if value is None else Secret(value)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{setting} must be a string, got {type(value).__name__} from {origin}")
    return value


def resolve_settings(
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    **arguments: Any,
) -> Settings:
    """Resolve a profile's settings: arguments, then environment, then config file, then defaults.

    Parameters
    ----------
    profile
        ``"local"``, ``"emulated"``, ``"azure"``, or the name of a ``[profiles.NAME]`` table of
        the config file. Default: ``AZHPC_PROFILE``, else the file's ``default``, else
        ``"local"``.
    environ
        The environment to read (default ``os.environ``).
    config_file
        The config file (default: ``AZHPC_CONFIG``, else ``~/.config/azhpc/config.toml``).
        A missing file is no error.
    **arguments
        Settings given explicitly (``None`` means "not given"): ``lake_root``,
        ``account_name``, ``blob_endpoint``, ``container``, ``account_key``,
        ``connection_string``, ``sas_token``, ``credential``, ``workers``, ``slots``.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        An unknown profile or setting (the message lists the valid ones with their defaults),
        a badly typed value, or a setting that does not apply to the profile.

    Examples
    --------
    >>> resolve_settings("local", lake_root="/tmp/lake", environ={}).lake_root
    '/tmp/lake'
    """
    environ = os.environ if environ is None else environ
    defaults = _defaults()
    unknown = set(arguments) - set(defaults) - {"profile"}
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; valid ones (with defaults): "
            f"{valid_settings_text()}"
        )
    path = Path(config_file).expanduser() if config_file else config_path(environ)
    data = _load_file(path)
    tables: dict[str, dict[str, Any]] = data.get("profiles", {})

    name = profile or environ.get("AZHPC_PROFILE") or data.get("default") or "local"
    if name in tables:
        table = dict(tables[name])
        kind = table.pop("profile", name)
        if kind not in PROFILES:
            raise ConfigError(
                f"[profiles.{name}] of {path}: profile = {kind!r} is not a kind of profile; "
                f"choose one of {', '.join(PROFILES)}"
            )
        bad = set(table) - set(defaults)
        if bad:
            raise ConfigError(
                f"[profiles.{name}] of {path} has unknown setting(s) {', '.join(sorted(bad))}; "
                f"valid ones (with defaults): {valid_settings_text()}"
            )
        if "credential" in table:
            raise ConfigError(
                f"[profiles.{name}] of {path}: credential is an object; pass it to "
                "azhpc.connect(credential=...), or leave it out to use DefaultAzureCredential"
            )
    elif name in PROFILES:
        kind, table = name, {}
    else:
        named = f" or a profile of {path} ({', '.join(sorted(tables))})" if tables else ""
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}{named}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in defaults:
        if setting == "profile":
            continue
        given = arguments.get(setting)
        variable = ENVIRONMENT.get(setting)
        if given is not None:
            values[setting] = _coerce(setting, given, "the argument")
            sources[setting] = "the argument"
        elif variable and environ.get(variable):
            values[setting] = _coerce(setting, environ[variable], variable)
            sources[setting] = variable
        elif setting in table:
            origin = f"[profiles.{name}] of {path}"
            values[setting] = _coerce(setting, table[setting], origin)
            sources[setting] = origin

    # A lake setting that does not fit the profile is a mistake when named explicitly
    # (argument or config table); in the environment it is just there for another profile.
    lake_fields = {f for fields in _LAKE_SETTINGS.values() for f in fields}
    for setting in list(values):
        if setting in lake_fields and setting not in _LAKE_SETTINGS[kind]:
            if sources[setting] == "the argument" or sources[setting].startswith("[profiles."):
                raise ConfigError(
                    f"{setting} does not apply to the {kind!r} profile (from "
                    f"{sources[setting]}); it takes: {', '.join(_LAKE_SETTINGS[kind])}, "
                    "workers, slots"
                )
            del values[setting], sources[setting]
    if "lake_root" in values:
        values["lake_root"] = str(Path(values["lake_root"]).expanduser())
    return Settings(profile=kind, name=name, sources=sources, **values)
