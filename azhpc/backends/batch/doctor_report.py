"""``azhpc doctor``'s report, and the checks that need no service: the clock against a
service's ``Date`` header, a VM size against the catalog, the default images against a
supported-images listing. :mod:`azhpc.backends.batch.doctor` asks the services and builds the
report from these.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from azhpc.pools.catalog import price_table, retirement_message
from azhpc.pools.spec import ImageReference

__all__ = [
    "MAX_CLOCK_SKEW",
    "DoctorCheck",
    "DoctorReport",
    "check_clock",
    "check_images",
    "check_vm_size",
    "skipped",
]

#: Beyond this difference between this machine's clock and the services', SharedKey requests
#: are refused and SAS tokens signed here are not yet (or no longer) valid.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class DoctorCheck:
    """One check of :func:`doctor`.

    Attributes
    ----------
    name
        What was checked (``"batch account"``, ``"vm size Standard_H16r"``, ...).
    ok
        Whether it passed (``False`` for a skipped check).
    detail
        What was found; for a failure, what went wrong (secrets removed).
    fix
        For a failure, what to do: the setting, variable or config key, or the ``az`` command.
    skipped
        Not run, because a check it depends on failed (``detail`` says which).
    """

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    skipped: bool = False


@dataclass
class DoctorReport:
    """What :func:`doctor` found: one :class:`DoctorCheck` per line.

    Attributes
    ----------
    profile
        The profile's name.
    checks
        The checks, in the order they ran.
    """

    profile: str
    checks: list[DoctorCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[DoctorCheck]:
        """The checks that failed (skipped ones included)."""
        return [check for check in self.checks if not check.ok]

    def render(self, *, unicode: bool = True) -> str:
        """The report as text: one line per check (✔/✘/-, or OK/FAIL/SKIP), then a summary.

        Parameters
        ----------
        unicode
            Use ✔ ✘ - (else OK, FAIL, SKIP, for terminals that cannot show them).
        """
        marks = ("✔", "✘", "-") if unicode else ("OK  ", "FAIL", "SKIP")
        lines = [f"azhpc doctor: profile {self.profile!r}"]
        for check in self.checks:
            mark = marks[2] if check.skipped else marks[0] if check.ok else marks[1]
            lines.append(f"{mark} {check.name}: {check.detail}".rstrip(": "))
            if not check.ok and check.fix:
                lines.append(f"    fix: {check.fix}")
        failed = sum(not c.ok and not c.skipped for c in self.checks)
        skipped = sum(c.skipped for c in self.checks)
        if self.ok:
            lines.append(f"all {len(self.checks)} checks passed")
        else:
            lines.append(
                f"{failed} check(s) failed" + (f", {skipped} skipped" if skipped else "")
                + f", {len(self.checks) - failed - skipped} passed"
            )  # fmt: skip
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


# -- the pure checks ------------------------------------------------------------------------------


def check_clock(server_date: str, local: dt.datetime, source: str = "the service") -> DoctorCheck:
    """Compare a service's ``Date`` header with this machine's clock when it arrived.

    Parameters
    ----------
    server_date
        The ``Date`` header (RFC 7231, ``Wed, 02 Dec 2026 18:21:22 GMT``).
    local
        This machine's time (UTC) when the response arrived.
    source
        Which service sent it, for the message (``"Batch"``, ``"storage"``).
    """
    try:
        server = email.utils.parsedate_to_datetime(server_date)
    except (TypeError, ValueError):
        return DoctorCheck("clock", False, f"{source} sent an unreadable Date {server_date!r}")
    if server.tzinfo is None:
        server = server.replace(tzinfo=dt.UTC)
    skew = (local - server).total_seconds()
    # Date has whole seconds: up to 1 s of difference is rounding.
    text = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} {source}"
    if abs(skew) <= 1:
        text = f"in step with {source} (within 1 s)"
    if abs(skew) > MAX_CLOCK_SKEW.total_seconds():
        return DoctorCheck(
            "clock",
            False,
            f"this machine's clock is {text}; SharedKey requests and SAS tokens fail beyond "
            f"{MAX_CLOCK_SKEW.total_seconds() / 60:.0f} minutes",
            "synchronise the clock: `sudo timedatectl set-ntp true` (Linux), `sudo hwclock -s` "
            "(WSL), `w32tm /resync` (Windows), or enable 'Set time automatically' (macOS)",
        )
    return DoctorCheck("clock", True, text)


def check_vm_size(name: str) -> DoctorCheck:
    """Whether ``name`` is a VM size of azhpc's catalogue that Azure has not retired."""
    table = price_table()
    size = table.get(name)
    label = f"vm size {name}"
    if size is None:
        close = table.suggestions(name)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return DoctorCheck(
            label,
            False,
            "not a size azhpc knows, so PoolSpec refuses it",
            f"{hint}current sizes: {', '.join(table.names(retired=False))} (or add a row to "
            "azhpc/pools/prices.csv)",
        )
    if size.retired:
        return DoctorCheck(
            label, False, f"retired by Azure on {size.retired_on}", retirement_message(size)
        )
    price = (
        f"{size.linux_per_hour:.3f} {table.currency}/node-hour"
        if size.linux_per_hour is not None
        else "no price on record"
    )
    return DoctorCheck(
        label, True, f"current ({size.vcpus} vCPUs, {size.memory_gib:g} GiB, {price})"
    )


def check_images(
    supported: Iterable[Any], wanted: Sequence[ImageReference], now: dt.datetime | None = None
) -> DoctorCheck:
    """Whether each of ``wanted`` is in a List Supported Images answer, with its node agent.

    Parameters
    ----------
    supported
        ``azure.batch.models.BatchSupportedImage`` objects (or anything with
        ``node_agent_sku_id``, ``image_reference`` and ``batch_support_end_of_life``).
    wanted
        The images azhpc would use.
    now
        The time to compare end-of-life dates with (default: now).
    """
    now = now or dt.datetime.now(dt.UTC)
    found: dict[tuple[str, str, str, str], Any] = {}
    for image in supported:
        ref = image.image_reference
        key = (
            str(image.node_agent_sku_id or "").lower(),
            str(ref.publisher or "").lower(),
            str(ref.offer or "").lower(),
            str(ref.sku or "").lower(),
        )
        found[key] = image
    missing, ending, shown = [], [], []
    for want in wanted:
        text = f"{want.publisher}:{want.offer}:{want.sku} ({want.node_agent_sku_id})"
        key = (
            want.node_agent_sku_id.lower(),
            want.publisher.lower(),
            want.offer.lower(),
            want.sku.lower(),
        )
        image = found.get(key)
        if image is None:
            missing.append(text)
            continue
        end = image.batch_support_end_of_life
        if end is not None and end.tzinfo is None:
            end = end.replace(tzinfo=dt.UTC)
        if end is not None and end <= now:
            missing.append(f"{text}, past its Batch end of life {end:%Y-%m-%d}")
        elif end is not None:
            ending.append(f"{text} until {end:%Y-%m-%d}")
        shown.append(text)
    if missing:
        return DoctorCheck(
            "batch images",
            False,
            f"not supported by this Batch account: {'; '.join(missing)}",
            "pass PoolSpec(image=ImageReference(...)) with an image the account lists: "
            "`az batch pool supported-images list --query \"[?osType=='linux']\" -o table` "
            "(after `az batch account login`)",
        )
    detail = f"supported: {', '.join(shown)}"
    if ending:
        detail += f" (Batch supports {'; '.join(ending)})"
    return DoctorCheck("batch images", True, detail)


def skipped(name: str, because: str) -> DoctorCheck:
    """A check not made because one it depends on failed."""
    return DoctorCheck(name, False, f"not checked: {because}", skipped=True)
