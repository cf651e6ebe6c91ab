"""The live tests' cost cap: the worst case of each test, reserved before it runs.

A live test declares the largest pool it will ever have (``@pytest.mark.live(vm_size=...,
nodes=...)``) and its time limit (``@pytest.mark.timeout(seconds)``, enforced by
pytest-timeout). Its worst case is that pool's price per hour from azhpc's offline price table
(:func:`azhpc.pools.estimate`) times the time limit. Before each test the worst case is taken
from what is left of ``AZHPC_LIVE_MAX_EUR`` (default 5); a test whose worst case does not fit
is skipped, and so is one whose size has no price on record (the cap could not be checked).
The test then builds its pool with ``max_cost_per_hour`` set to the hourly figure reserved, so
azhpc itself refuses a pool larger than the one declared. Nothing here talks to Azure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from azhpc.pools import CostEstimate, estimate, price_table

__all__ = [
    "CAP_VARIABLE",
    "DEFAULT_CAP_EUR",
    "CostCap",
    "WorstCase",
    "smallest_priced_hb_size",
    "worst_case",
]

#: The environment variable of the cap, in euros, for the whole live run.
CAP_VARIABLE = "AZHPC_LIVE_MAX_EUR"
#: The cap when ``AZHPC_LIVE_MAX_EUR`` is unset: enough for every live test's worst case.
DEFAULT_CAP_EUR = 5.0


@dataclass(frozen=True)
class WorstCase:
    """What a live test can cost at most: its largest pool for its whole time limit.

    Attributes
    ----------
    estimate
        The pool's offline cost per hour at its largest.
    seconds
        The test's time limit.
    """

    estimate: CostEstimate
    seconds: float

    @property
    def per_hour(self) -> float | None:
        """The pool's price per hour, or ``None`` when the table has no price for its size."""
        return self.estimate.per_hour

    @property
    def total(self) -> float | None:
        """Price per hour x time limit, or ``None`` without a price."""
        per_hour = self.per_hour
        return None if per_hour is None else per_hour * self.seconds / 3600

    def __str__(self) -> str:
        total = self.total
        cost = "price unknown" if total is None else f"at most {total:.2f} {self.estimate.currency}"
        return f"{self.estimate.summary_line()} for {self.seconds / 60:g} min: {cost}"


def worst_case(vm_size: str, nodes: int = 0, spot_nodes: int = 0, *, seconds: float) -> WorstCase:
    """The worst case of a test whose largest pool is ``nodes`` + ``spot_nodes`` of a size.

    Raises
    ------
    azhpc.pools.PoolSpecError
        The size is not in the price table, or a count is not a whole number >= 0.
    ValueError
        ``seconds`` is not a positive number.
    """
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a live test needs a positive time limit in seconds, got {seconds!r}")
    return WorstCase(estimate(vm_size, nodes=nodes, spot_nodes=spot_nodes), float(seconds))


@dataclass
class CostCap:
    """What the live run may spend at most, and what its tests have reserved so far.

    Parameters
    ----------
    limit
        The cap, in the price table's currency (EUR).

    Attributes
    ----------
    reserved
        ``(test, amount)`` for each test that was let run, in order.
    """

    limit: float
    reserved: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int | float)
            or not math.isfinite(self.limit)
            or self.limit < 0
        ):
            raise ValueError(f"the cost cap must be a number >= 0, got {self.limit!r}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CostCap:
        """The cap ``AZHPC_LIVE_MAX_EUR`` sets (default :data:`DEFAULT_CAP_EUR`).

        Raises
        ------
        ValueError
            The variable is not a number >= 0.
        """
        environ = os.environ if environ is None else environ
        text = environ.get(CAP_VARIABLE, "").strip()
        if not text:
            return cls(DEFAULT_CAP_EUR)
        try:
            limit = float(text)
        except ValueError:
            raise ValueError(
                f"{CAP_VARIABLE}={text!r} is not a number of euros; e.g. {CAP_VARIABLE}=5"
            ) from None
        return cls(limit)

    @property
    def spent(self) -> float:
        """The sum of the worst cases reserved so far."""
        return sum(amount for _, amount in self.reserved)

    @property
    def left(self) -> float:
        """What is left of the cap."""
        return self.limit - self.spent

    def refusal(self, worst: WorstCase) -> str | None:
        """Why a test with this worst case may not run (a skip reason), or ``None``."""
        currency = worst.estimate.currency
        if currency != "EUR":
            return f"the price table is in {currency}, but {CAP_VARIABLE} is in EUR"
        total = worst.total
        if total is None:
            return (
                f"no price on record for {worst.estimate.vm_size} in azhpc/pools/prices.csv, so "
                f"the cost cap ({CAP_VARIABLE}) cannot be checked: {worst}"
            )
        if total > self.left:
            return (
                f"cost cap: the worst case ({worst}) is more than what is left of "
                f"{CAP_VARIABLE}={self.limit:g} ({self.left:.2f} EUR after "
                f"{len(self.reserved)} test(s)); raise {CAP_VARIABLE} to run it"
            )
        return None

    def reserve(self, test: str, worst: WorstCase) -> str | None:
        """Reserve the worst case of ``test``; return why not (a skip reason) instead."""
        reason = self.refusal(worst)
        if reason is None:
            assert worst.total is not None  # refusal() said so
            self.reserved.append((test, worst.total))
        return reason

    def summary(self) -> str:
        """One line for the end of the run."""
        return (
            f"live tests reserved {self.spent:.2f} of {CAP_VARIABLE}={self.limit:g} EUR (worst "
            f"cases of {len(self.reserved)} test(s), compute only, offline list prices)"
        )


def smallest_priced_hb_size() -> str:
    """The current HB size (Azure's SR-IOV InfiniBand HPC series) with the fewest vCPUs among
    those the price table has a price for: the cost cap needs a price."""
    sizes = [
        size
        for size in price_table().sizes.values()
        if size.name.lower().startswith("standard_hb")
        and size.sriov
        and not size.retired
        and size.linux_per_hour is not None
    ]
    if not sizes:
        raise LookupError("no current HB size with a price in azhpc/pools/prices.csv")
    return min(sizes, key=lambda s: (s.vcpus, s.linux_per_hour or 0.0, s.name)).name
