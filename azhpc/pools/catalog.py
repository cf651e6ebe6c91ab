"""The offline VM catalogue: sizes azhpc knows, their shape and their price per node-hour.

The table is ``prices.csv`` next to this module (package data). Its header states the currency,
the region, when and how it was compiled, and how far each price can be trusted
(``price_status``); ``docs/pools.md`` repeats it. Nothing here talks to Azure.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import enum
import functools
import io
from dataclasses import dataclass
from importlib import resources

from azhpc.errors import PoolSpecError

__all__ = [
    "ASSUMED_SPOT_DISCOUNT",
    "PriceStatus",
    "PriceTable",
    "VmSize",
    "lookup_size",
    "price_table",
]

#: Used only when the table has no spot price for a size: spot (low-priority) nodes are assumed
#: to cost this fraction less than pay-as-you-go. Azure quotes spot discounts "up to 90%" that
#: vary by size, region and time; 0.6 is a deliberately cautious assumption, and every estimate
#: that relies on it says so.
ASSUMED_SPOT_DISCOUNT = 0.6


class PriceStatus(enum.Enum):
    """How far a price in the table can be trusted (see the header of ``prices.csv``)."""

    REFERENCE = "reference"
    APPROXIMATE = "approximate"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VmSize:
    """One VM size of the catalogue.

    Attributes
    ----------
    name
        Azure's name, e.g. ``"Standard_H16r"``.
    vcpus, memory_gib
        Shape of one node.
    rdma
        Has the InfiniBand (RDMA) back-end network for MPI.
    sriov
        RDMA is exposed through SR-IOV (HB/HC and newer): the Ubuntu-HPC and AlmaLinux-HPC
        images carry the drivers. ``False`` on RDMA sizes means the older Network Direct kind
        (H16r, H16mr).
    linux_per_hour
        Linux pay-as-you-go price of one node-hour in the table's currency, or ``None``.
    spot_per_hour
        Spot price of one node-hour, or ``None`` when the table has none.
    price_status
        How far ``linux_per_hour`` can be trusted.
    retired_on
        The day Azure retired the size (Batch refuses to create pools of it from then on), or
        ``None`` for a current size.
    successors
        The current sizes Microsoft recommends instead of a retired one, best first.
    """

    name: str
    vcpus: int
    memory_gib: float
    rdma: bool
    sriov: bool
    linux_per_hour: float | None
    spot_per_hour: float | None
    price_status: PriceStatus
    retired_on: dt.date | None = None
    successors: tuple[str, ...] = ()

    @property
    def max_task_slots(self) -> int:
        """Batch's limit for ``taskSlotsPerNode`` on this size: min(4 x vCPUs, 256)."""
        return min(4 * self.vcpus, 256)

    @property
    def retired(self) -> bool:
        """Whether Azure has retired the size (its retirement day has come)."""
        return self.retired_on is not None and self.retired_on <= dt.date.today()


@dataclass(frozen=True)
class PriceTable:
    """The catalogue: sizes by lower-cased name, and the currency, region and date of prices."""

    sizes: dict[str, VmSize]
    currency: str
    region: str
    compiled: str

    def get(self, name: str) -> VmSize | None:
        """The size called ``name`` (case-insensitive, as Azure treats it), or ``None``."""
        return self.sizes.get(name.strip().lower())

    def suggestions(self, name: str, *, limit: int = 3) -> list[str]:
        """Sizes whose names are close to ``name``, best first (for "did you mean" messages)."""
        key = name.strip().lower()
        if not key.startswith("standard_"):
            key = "standard_" + key
        close = difflib.get_close_matches(key, list(self.sizes), n=limit, cutoff=0.6)
        return [self.sizes[c].name for c in close]

    def names(self, *, retired: bool = True) -> list[str]:
        """Every size's Azure name, sorted (without the retired ones when ``retired=False``)."""
        return sorted(size.name for size in self.sizes.values() if retired or not size.retired)


def _parse(text: str) -> PriceTable:
    header: dict[str, str] = {}
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, sep, value = line.lstrip("# ").partition(":")
            if sep and key in {"currency", "region", "compiled"}:
                header[key] = value.strip()
        elif line.strip():
            body.append(line)
    sizes: dict[str, VmSize] = {}
    for row in csv.DictReader(io.StringIO("\n".join(body))):
        size = VmSize(
            name=row["vm_size"],
            vcpus=int(row["vcpus"]),
            memory_gib=float(row["memory_gib"]),
            rdma=row["rdma"] == "true",
            sriov=row["sriov"] == "true",
            linux_per_hour=float(row["linux_per_hour"]) if row["linux_per_hour"] else None,
            spot_per_hour=float(row["spot_per_hour"]) if row["spot_per_hour"] else None,
            price_status=PriceStatus(row["price_status"]),
            retired_on=dt.date.fromisoformat(row["retired_on"]) if row["retired_on"] else None,
            successors=tuple(row["successors"].split()),
        )
        sizes[size.name.lower()] = size
    return PriceTable(
        sizes=sizes,
        currency=header["currency"],
        region=header["region"],
        compiled=header["compiled"].split(",")[0].strip(),
    )


@functools.cache
def price_table() -> PriceTable:
    """The packaged catalogue (read once)."""
    text = resources.files("azhpc.pools").joinpath("prices.csv").read_text(encoding="utf-8")
    return _parse(text)


def lookup_size(vm_size: object) -> VmSize:
    """The catalogue entry of ``vm_size`` (case-insensitive), retired sizes included.

    Raises
    ------
    PoolSpecError
        ``vm_size`` is not a size of the table; the message suggests close names and lists
        the current sizes.
    """
    table = price_table()
    if not isinstance(vm_size, str) or not vm_size.strip():
        raise PoolSpecError("vm_size", f"must be an Azure VM size name, got {vm_size!r}")
    size = table.get(vm_size)
    if size is None:
        close = table.suggestions(vm_size)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise PoolSpecError(
            "vm_size",
            f"unknown VM size {vm_size!r}; {hint}known sizes: "
            f"{', '.join(table.names(retired=False))} "
            "(add a row to azhpc/pools/prices.csv for another size)",
        )
    return size


def retirement_message(size: VmSize) -> str:
    """Why ``size`` cannot be created any more, and what to use instead (for errors)."""
    table = price_table()
    instead = []
    for name in size.successors:
        successor = table.get(name)
        if successor is None:
            instead.append(name)
            continue
        price = (
            f"{successor.linux_per_hour:.2f} {table.currency}/node-hour"
            if successor.linux_per_hour is not None
            else "price unknown"
        )
        instead.append(
            f"{successor.name} ({successor.vcpus} vCPUs, {successor.memory_gib:g} GiB, {price})"
        )
    use = f"use {' or '.join(instead)} instead" if instead else "choose a current size"
    return (
        f"{size.name} was retired by Azure on {size.retired_on}: Batch no longer creates pools "
        f"of it. {use[0].upper()}{use[1:]}. (Its offline estimate still works: "
        f"azhpc.pools.estimate({size.name!r}, nodes=N).)"
    )
