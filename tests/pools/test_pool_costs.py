"""The offline price table and cost estimates."""

from __future__ import annotations

import pytest

from azhpc.pools import Autoscale, PoolSpec, PriceStatus, price_table

REQUIRED_SIZES = [
    "Standard_D2s_v5",
    "Standard_D4s_v5",
    "Standard_D8s_v5",
    "Standard_D16s_v5",
    "Standard_E8s_v5",
    "Standard_F16s_v2",
    "Standard_H16r",
    "Standard_H16mr",
    "Standard_HB120rs_v3",
    "Standard_HC44rs",
    "Standard_NC6s_v3",
]


def test_price_table_states_currency_region_and_date() -> None:
    table = price_table()
    assert table.currency == "EUR" and table.region == "westeurope"
    assert table.compiled == "2026-11-23"


@pytest.mark.parametrize("name", REQUIRED_SIZES)
def test_price_table_has_size(name: str) -> None:
    size = price_table().get(name)
    assert size is not None and size.vcpus > 0 and size.memory_gib > 0
    assert (size.linux_per_hour is None) == (size.price_status is PriceStatus.UNKNOWN)


def test_price_table_shapes_and_rdma() -> None:
    h16r = price_table().get("standard_h16r")
    assert (h16r.vcpus, h16r.memory_gib, h16r.rdma, h16r.sriov) == (16, 112, True, False)
    assert price_table().get("Standard_HB120rs_v3").sriov
    assert not price_table().get("Standard_D4s_v5").rdma


def test_estimate_ten_h16r_is_about_18_eur_per_hour() -> None:
    estimate = PoolSpec("hpc", "Standard_H16r", nodes=10).estimate()
    assert estimate.currency == "EUR"
    assert estimate.per_hour == pytest.approx(18.0, abs=1.0)
    assert estimate.dedicated_per_node == pytest.approx(1.8, abs=0.1)
    text = str(estimate)
    assert text.startswith("10 x Standard_H16r (dedicated): 18.00 EUR/hour")
    assert "westeurope" in text and "reference" in text


def test_estimate_spot_is_cheaper_and_says_it_assumed() -> None:
    dedicated = PoolSpec("hpc", "Standard_H16r", nodes=10).estimate()
    spot = PoolSpec("hpc", "Standard_H16r", spot_nodes=10).estimate()
    assert spot.per_hour < dedicated.per_hour
    assert any("assumed" in note for note in spot.notes)
    mixed = PoolSpec("hpc", "Standard_H16r", nodes=2, spot_nodes=8).estimate()
    assert mixed.per_hour == pytest.approx(mixed.dedicated_per_hour + mixed.spot_per_hour)
    assert "(spot)" in str(mixed) and "(dedicated)" in str(mixed)


def test_estimate_unknown_price_says_so() -> None:
    estimate = PoolSpec("p", "Standard_H16mr", nodes=2).estimate()
    assert estimate.per_hour is None and not estimate.known
    assert "price unknown" in str(estimate)


def test_estimate_approximate_price_is_flagged() -> None:
    estimate = PoolSpec("p", "Standard_D4s_v5", nodes=4).estimate()
    assert estimate.price_status is PriceStatus.APPROXIMATE
    assert any("not verified" in note for note in estimate.notes)


def test_estimate_autoscale_uses_the_policy_maximum() -> None:
    spec = PoolSpec(
        "p",
        "Standard_H16r",
        autoscale=Autoscale.follow_pending_tasks(max_nodes=10, slots_per_node=16),
        task_slots_per_node=16,
    )
    estimate = spec.estimate()
    assert estimate.dedicated_nodes == 10 and estimate.per_hour == pytest.approx(18.0)
    spot = PoolSpec(
        "p", "Standard_H16r", autoscale=Autoscale.follow_pending_tasks(max_nodes=10, spot=True)
    ).estimate()
    assert spot.spot_nodes == 10 and spot.dedicated_nodes == 0
