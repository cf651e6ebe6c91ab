"""The offline cost estimate of a pool, per hour, from the packaged price table."""

from __future__ import annotations

from dataclasses import dataclass

from azhpc.errors import PoolSpecError
from azhpc.pools.catalog import (
    ASSUMED_SPOT_DISCOUNT,
    PriceStatus,
    VmSize,
    lookup_size,
    price_table,
)

__all__ = ["CostEstimate", "estimate", "estimate_cost"]


@dataclass(frozen=True)
class CostEstimate:
    """What a pool costs per hour at its target size (or at its autoscale maximum).

    Attributes
    ----------
    vm_size
        The pool's VM size.
    dedicated_nodes, spot_nodes
        Node counts the estimate is for.
    dedicated_per_node, spot_per_node
        Price of one node-hour, or ``None`` when the table has no price for the size.
    currency, region
        Of the price table.
    price_status
        How far the table's price can be trusted (``reference``, ``approximate``, ``unknown``).
    notes
        Everything the reader should know: assumptions, autoscale, provenance.
    retired_on
        The day Azure retired the size (ISO date), or ``None``: an estimate of a retired size
        is for reference only, since Batch no longer creates it.
    """

    vm_size: str
    dedicated_nodes: int
    spot_nodes: int
    dedicated_per_node: float | None
    spot_per_node: float | None
    currency: str
    region: str
    price_status: PriceStatus
    notes: tuple[str, ...] = ()
    retired_on: str | None = None

    @property
    def dedicated_per_hour(self) -> float | None:
        """Dedicated nodes' cost per hour (``0.0`` without dedicated nodes)."""
        if not self.dedicated_nodes:
            return 0.0
        if self.dedicated_per_node is None:
            return None
        return self.dedicated_nodes * self.dedicated_per_node

    @property
    def spot_per_hour(self) -> float | None:
        """Spot nodes' cost per hour (``0.0`` without spot nodes)."""
        if not self.spot_nodes:
            return 0.0
        if self.spot_per_node is None:
            return None
        return self.spot_nodes * self.spot_per_node

    @property
    def per_hour(self) -> float | None:
        """Total cost per hour, or ``None`` when a needed price is unknown."""
        dedicated, spot = self.dedicated_per_hour, self.spot_per_hour
        if dedicated is None or spot is None:
            return None
        return dedicated + spot

    @property
    def known(self) -> bool:
        """Whether the table had every price this estimate needs."""
        return self.per_hour is not None

    def summary_line(self) -> str:
        """One line: the nodes and the total per hour (for progress displays)."""
        nodes = (
            " + ".join(
                f"{count} x {self.vm_size}{' spot' if kind == 'spot' else ''}"
                for count, kind in ((self.dedicated_nodes, ""), (self.spot_nodes, "spot"))
                if count
            )
            or f"0 x {self.vm_size}"
        )
        total = self.per_hour
        cost = f"about {total:.2f} {self.currency}/hour" if total is not None else "price unknown"
        retired = f" (size retired {self.retired_on})" if self.retired_on else ""
        return f"{nodes}, {cost}{retired}"

    def __str__(self) -> str:
        lines = []
        retired = f", RETIRED {self.retired_on}" if self.retired_on else ""
        for count, kind, per_node, total in (
            (self.dedicated_nodes, "dedicated", self.dedicated_per_node, self.dedicated_per_hour),
            (self.spot_nodes, "spot", self.spot_per_node, self.spot_per_hour),
        ):
            if not count:
                continue
            if total is None or per_node is None:
                lines.append(f"{count} x {self.vm_size} ({kind}{retired}): price unknown")
            else:
                lines.append(
                    f"{count} x {self.vm_size} ({kind}{retired}): {total:.2f} {self.currency}/hour "
                    f"({per_node:.3f} per node)"
                )
        if not lines:
            lines.append(f"0 x {self.vm_size}{retired}: 0.00 {self.currency}/hour")
        total = self.per_hour
        head = (
            f"about {total:.2f} {self.currency}/hour"
            if total is not None
            else "total unknown (no price on record)"
        )
        lines.append(
            f"total: {head} in {self.region}, Linux list prices ({self.price_status.value})"
        )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def estimate_cost(
    size: VmSize, dedicated_nodes: int, spot_nodes: int, *, extra_notes: tuple[str, ...] = ()
) -> CostEstimate:
    """Estimate ``dedicated_nodes`` + ``spot_nodes`` nodes of ``size`` per hour.

    Parameters
    ----------
    size
        A catalogue entry (:func:`azhpc.pools.catalog.price_table`).
    dedicated_nodes, spot_nodes
        Node counts.
    extra_notes
        Notes from the caller (e.g. "autoscale: estimate at the formula's maximum").

    Returns
    -------
    CostEstimate
    """
    table = price_table()
    notes = list(extra_notes)
    per_node = size.linux_per_hour
    if size.retired:
        instead = f"; current sizes: {', '.join(size.successors)}" if size.successors else ""
        notes.append(
            f"{size.name} was retired by Azure on {size.retired_on}: Batch no longer creates "
            f"it, so this estimate is for reference only{instead}"
        )
    if size.price_status is PriceStatus.REFERENCE:
        notes.append(
            f"{size.name}: the project's reference figure (no current Azure list price found; "
            "the size is retired)"
        )
    elif size.price_status is PriceStatus.APPROXIMATE:
        notes.append(
            f"{size.name}: approximate list price, not verified against a published "
            f"{table.currency} figure (table compiled {table.compiled})"
        )
    else:
        notes.append(f"{size.name}: no published price found; cost unknown")
    spot_per_node = size.spot_per_hour
    if spot_nodes and spot_per_node is None and per_node is not None:
        spot_per_node = round(per_node * (1 - ASSUMED_SPOT_DISCOUNT), 4)
        notes.append(
            f"spot price not on record: assumed {ASSUMED_SPOT_DISCOUNT:.0%} below pay-as-you-go "
            "(real spot prices vary by size, region and time)"
        )
    notes.append("compute only: disks, storage, bandwidth and taxes are not included")
    return CostEstimate(
        vm_size=size.name,
        dedicated_nodes=dedicated_nodes,
        spot_nodes=spot_nodes,
        dedicated_per_node=per_node,
        spot_per_node=spot_per_node,
        currency=table.currency,
        region=table.region,
        price_status=size.price_status,
        notes=tuple(notes),
        retired_on=size.retired_on.isoformat() if size.retired else None,
    )


def estimate(vm_size: str, nodes: int = 0, spot_nodes: int = 0) -> CostEstimate:
    """The offline cost per hour of ``nodes`` dedicated + ``spot_nodes`` spot nodes of a size.

    Unlike :meth:`PoolSpec.estimate`, this needs no creatable pool: it also prices sizes Azure
    has retired (the estimate is then marked retired), e.g. to compare with an old budget.

    Parameters
    ----------
    vm_size
        A size of the price table (case-insensitive), retired ones included.
    nodes, spot_nodes
        Node counts (whole numbers >= 0).

    Returns
    -------
    CostEstimate

    Raises
    ------
    PoolSpecError
        The size is not in the table, or a count is not a whole number >= 0.

    Examples
    --------
    >>> print(estimate("Standard_H16r", nodes=10))  # doctest: +SKIP
    10 x Standard_H16r (dedicated, RETIRED 2022-08-31): 18.00 EUR/hour (1.800 per node)
    ...
    """
    size = lookup_size(vm_size)
    for name, count in (("nodes", nodes), ("spot_nodes", spot_nodes)):
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise PoolSpecError(name, f"must be a whole number >= 0, got {count!r}")
    return estimate_cost(size, nodes, spot_nodes)
