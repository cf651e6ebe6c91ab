"""Which profile the live tests use, and the cleanup of the pools they leave.

The profile is ``AZHPC_LIVE_PROFILE`` (default ``"azure"``): the built-in ``azure`` kind (from
``AZHPC_*`` variables) or a ``[profiles.NAME]`` table of the config file. It is checked offline
with :func:`azhpc.config.resolve_settings`; without a Batch account and a storage account the
live tests are skipped with a reason that names what to set.

Every pool a live run creates has an id that starts with the run's prefix
``azhpc-live-<random>``; :func:`delete_live_pools` deletes those the tests left (with
``azhpc/backends/batch/cleanup.py``, the code behind ``azhpc pools list|delete``).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from azhpc.config import ENVIRONMENT, Settings, config_path, resolve_settings
from azhpc.errors import BatchError, ConfigError

if TYPE_CHECKING:
    from azhpc.backends.batch.account import BatchAccount

__all__ = [
    "CONFIG_VARIABLE",
    "POOL_PREFIX",
    "PROFILE_VARIABLE",
    "delete_live_pools",
    "live_config_file",
    "live_pools",
    "live_settings",
    "new_run_prefix",
    "wait_for",
]

#: The profile the live tests run on.
PROFILE_VARIABLE = "AZHPC_LIVE_PROFILE"
#: The config file the live tests read (tests/conftest.py points ``AZHPC_CONFIG`` at an empty
#: one for the normal suite, and keeps the user's own here).
CONFIG_VARIABLE = "AZHPC_LIVE_CONFIG"
#: Every live pool id starts with this, then the run's random part.
POOL_PREFIX = "azhpc-live-"
#: Where the live tests' setup is documented.
GUIDE = "docs/azure.md"


def new_run_prefix() -> str:
    """``azhpc-live-<6 hex>``: 17 characters, so that a job-scoped pool's id (Batch keeps the
    first 20 characters of the prefix) still starts with it."""
    return f"{POOL_PREFIX}{secrets.token_hex(3)}"


def live_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """The config file of the live run: ``AZHPC_LIVE_CONFIG``, else as azhpc finds it."""
    environ = os.environ if environ is None else environ
    given = environ.get(CONFIG_VARIABLE)
    return Path(given).expanduser() if given else config_path(environ)


def _how_to_set(setting: str, name: str, path: Path) -> str:
    return f"{ENVIRONMENT[setting]} or {setting} in [profiles.{name}] of {path}"


def live_settings(environ: Mapping[str, str] | None = None) -> tuple[Settings | None, str]:
    """The live profile's settings, or ``None`` and why the live tests cannot run (offline).

    Returns
    -------
    (Settings, "") or (None, reason)
        The reason names the variables or config keys to set, and ``docs/azure.md``.
    """
    environ = os.environ if environ is None else environ
    name = environ.get(PROFILE_VARIABLE) or "azure"
    path = live_config_file(environ)
    guide = f"see {GUIDE}"
    try:
        settings = resolve_settings(name, environ=environ, config_file=path)
    except ConfigError as error:
        return None, (
            f"live tests need an azure profile: {PROFILE_VARIABLE}={name!r} cannot be used "
            f"({error}); {guide}"
        )
    if settings.profile != "azure":
        return None, (
            f"live tests need an azure profile, and {name!r} in {path} is a {settings.profile!r} "
            f'one: set profile = "azure" there, or {PROFILE_VARIABLE} to another profile; {guide}'
        )
    missing = []
    if not settings.batch_url:
        missing.append(f"a Batch account (set {_how_to_set('batch_url', name, path)})")
    if not (settings.account_name or settings.connection_string):
        missing.append(
            f"a storage account (set {_how_to_set('account_name', name, path)}, or "
            f"{ENVIRONMENT['connection_string']})"
        )
    if missing:
        return None, (
            f"live tests need an Azure subscription, and the {name!r} profile lacks "
            f"{' and '.join(missing)}; {PROFILE_VARIABLE} picks another profile; {guide}"
        )
    return settings, ""


def live_pools(account: BatchAccount, prefix: str) -> list[str]:
    """The ids of the account's pools that start with ``prefix`` and are not being deleted."""
    from azhpc.backends.batch.cleanup import list_pools

    return [
        record.pool_id
        for record in list_pools(account)
        if record.pool_id.startswith(prefix) and record.state != "deleting"
    ]


def delete_live_pools(account: BatchAccount, prefix: str) -> list[str]:
    """Delete every pool of the account whose id starts with ``prefix``; return their ids.

    A pool that is gone by the time it is deleted (a job-scoped pool goes with its job) is
    not an error.
    """
    from azhpc.backends.batch.cleanup import delete_pools

    deleted = []
    for pool_id in live_pools(account, prefix):
        try:
            deleted += delete_pools(account, [pool_id])
        except BatchError as error:
            if error.code != "PoolNotFound":
                raise
    return deleted


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float, what: str) -> None:
    """Poll the service until ``condition`` holds; ``TimeoutError`` after ``timeout`` seconds.

    ``interval``: seconds between polls (Batch's state changes take seconds to minutes on
    Azure, so a live test polls gently).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)  # polling the service: there is no event to wait on
