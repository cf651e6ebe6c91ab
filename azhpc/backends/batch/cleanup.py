"""Pools a killed client left behind: find them and delete them (``azhpc pools list|delete``).

A pool keeps billing until it is deleted. azhpc deletes the pools it creates when their owner
ends (``with`` block, ``close()``, interpreter exit, SIGTERM), but a ``kill -9``, a crashed
kernel or a lost laptop leaves them running. Every pool azhpc creates carries metadata
(``pool_body.ownership_metadata``: created by azhpc, ``user@host``, session, time), so they can
be found again: :func:`list_pools` shows every pool of the account with its size, nodes, age,
owner and cost per hour, :func:`delete_azhpc_pools` deletes only pools with azhpc's metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.account import call_batch
from azhpc.backends.batch.lifecycle import BatchPool
from azhpc.backends.batch.pool_body import CREATED_BY, OWNER, SESSION
from azhpc.errors import BatchError
from azhpc.pools.catalog import price_table
from azhpc.pools.estimate import estimate_cost

if TYPE_CHECKING:
    from azhpc.backends.batch.account import BatchAccount

__all__ = ["PoolRecord", "delete_azhpc_pools", "delete_pools", "format_pools", "list_pools"]

_SELECT = [
    "id",
    "vmSize",
    "state",
    "creationTime",
    "currentDedicatedNodes",
    "currentLowPriorityNodes",
    "targetDedicatedNodes",
    "targetLowPriorityNodes",
    "metadata",
]


@dataclass(frozen=True)
class PoolRecord:
    """One pool of the account, as ``azhpc pools list`` shows it.

    Attributes
    ----------
    pool_id, vm_size, state
        As Batch reports them (``state``: ``active`` or ``deleting``).
    dedicated_nodes, spot_nodes
        Nodes the pool has now (what it is billed for).
    created
        When Batch created the pool (UTC), if reported.
    owner, session
        ``user@host`` and session of the azhpc client that created it (``""`` otherwise).
    azhpc
        Whether the pool carries azhpc's metadata (``azhpc pools delete --all-azhpc``
        deletes only these).
    cost_per_hour, currency
        The offline estimate for the current nodes, or ``None`` when the size has no price.
    """

    pool_id: str
    vm_size: str
    state: str
    dedicated_nodes: int
    spot_nodes: int
    created: dt.datetime | None
    owner: str
    session: str
    azhpc: bool
    cost_per_hour: float | None
    currency: str

    @property
    def nodes(self) -> int:
        """Dedicated plus spot nodes."""
        return self.dedicated_nodes + self.spot_nodes

    def age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """How long the pool has existed, if its creation time is known."""
        if self.created is None:
            return None
        return (now or dt.datetime.now(dt.UTC)) - self.created


def _record(pool: Any) -> PoolRecord:
    metadata = {item.name: item.value for item in (pool.metadata or [])}
    dedicated = int(pool.current_dedicated_nodes or 0)
    spot = int(pool.current_low_priority_nodes or 0)
    vm_size = str(pool.vm_size or "")
    size = price_table().get(vm_size) if vm_size else None
    cost = estimate_cost(size, dedicated, spot).per_hour if size is not None else None
    created = pool.creation_time
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return PoolRecord(
        pool_id=str(pool.id),
        vm_size=vm_size,
        state=str(getattr(pool.state, "value", pool.state) or "").lower(),
        dedicated_nodes=dedicated,
        spot_nodes=spot,
        created=created,
        owner=metadata.get(OWNER, ""),
        session=metadata.get(SESSION, ""),
        azhpc=metadata.get(CREATED_BY) == "azhpc",
        cost_per_hour=cost,
        currency=price_table().currency,
    )


def list_pools(account: BatchAccount) -> list[PoolRecord]:
    """Every pool of the account, azhpc's and others', sorted by id.

    Parameters
    ----------
    account
        The Batch account (e.g. ``session.backend.account``).

    Returns
    -------
    list of PoolRecord
    """
    pools = call_batch(
        account,
        "list the pools",
        lambda: list(account.client().list_pools(select=_SELECT)),
    )
    return sorted((_record(pool) for pool in pools), key=lambda r: r.pool_id)


def delete_pools(account: BatchAccount, pool_ids: Iterable[str]) -> list[str]:
    """Delete the pools named, whoever created them; return their ids.

    A pool that is already being deleted counts as deleted; on the emulator the call waits
    until the pools are gone, on Azure it returns once Batch has accepted each deletion.

    Raises
    ------
    BatchError
        A pool does not exist (code ``PoolNotFound``), or Batch refused the deletion.
    """
    deleted = []
    for pool_id in pool_ids:
        pool = BatchPool(account, None, pool_id=pool_id, show=False)
        if pool.pool_state() is None:
            raise BatchError(
                f"there is no pool {pool_id!r} in the Batch account {account.account_name!r}; "
                "`azhpc pools list` shows the pools there are",
                code="PoolNotFound",
            )
        pool.delete()
        deleted.append(pool_id)
    return deleted


def delete_azhpc_pools(account: BatchAccount) -> list[str]:
    """Delete every pool that carries azhpc's metadata (and no other); return their ids.

    Pools already being deleted are left to finish.
    """
    doomed = [r.pool_id for r in list_pools(account) if r.azhpc and r.state != "deleting"]
    return delete_pools(account, doomed)


def _age_text(age: dt.timedelta | None) -> str:
    if age is None:
        return "?"
    minutes = max(0, int(age.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def format_pools(records: list[PoolRecord], now: dt.datetime | None = None) -> str:
    """The records as a text table: id, VM size, nodes, state, age, owner, cost per hour."""
    if not records:
        return "no pools in this Batch account"
    header = ("POOL", "VM SIZE", "NODES", "STATE", "AGE", "OWNER", "COST/HOUR")
    rows = [header]
    total = 0.0
    unknown = False
    for r in records:
        if r.cost_per_hour is None:
            cost = "unknown"
            unknown = unknown or r.nodes > 0
        else:
            cost = f"{r.cost_per_hour:.2f} {r.currency}"
            total += r.cost_per_hour
        nodes = f"{r.dedicated_nodes}" + (f"+{r.spot_nodes} spot" if r.spot_nodes else "")
        owner = r.owner or ("azhpc" if r.azhpc else "(not azhpc)")
        rows.append((r.pool_id, r.vm_size, nodes, r.state, _age_text(r.age(now)), owner, cost))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    currency = records[0].currency
    lines.append(
        f"total: about {total:.2f} {currency}/hour for the current nodes (offline list prices"
        + (", some unknown)" if unknown else ")")
    )
    return "\n".join(lines)
