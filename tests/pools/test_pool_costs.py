"""The offline price table and cost estimates."""

from __future__ import annotations

import pytest

from azhpc.pools import Autoscale, PoolSpec, PoolSpecError, PriceStatus, estimate, price_table

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
    "Standard_HB176rs_v4",
    "Standard_HB176-144rs_v4",
    "Standard_HB176-96rs_v4",
    "Standard_HB176-48rs_v4",
    "Standard_HB176-24rs_v4",
    "Standard_HX176rs",
    "Standard_HX176-144rs",
    "Standard_HX176-96rs",
    "Standard_HX176-48rs",
    "Standard_HX176-24rs",
    "Standard_NC24ads_A100_v4",
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


def test_retired_sizes_know_their_date_and_current_successors() -> None:
    table = price_table()
    for name, day in (
        ("Standard_H16r", "2022-08-31"),
        ("Standard_H16mr", "2022-08-31"),
        ("Standard_NC6s_v3", "2025-09-30"),
    ):
        size = table.get(name)
        assert size.retired and str(size.retired_on) == day and size.successors
        for successor in size.successors:
            assert table.get(successor) is not None and not table.get(successor).retired
    assert table.get("Standard_H16r").successors[0] == "Standard_HB176rs_v4"
    assert table.get("Standard_NC6s_v3").successors == ("Standard_NC24ads_A100_v4",)
    current = table.names(retired=False)
    assert "Standard_H16r" not in current and "Standard_HX176rs" in current
    assert "Standard_H16r" in table.names()


def test_modern_hpc_sizes_have_their_documented_shapes() -> None:
    table = price_table()
    for name, vcpus, memory in (
        ("Standard_HB176rs_v4", 176, 768),
        ("Standard_HB176-24rs_v4", 24, 768),
        ("Standard_HX176rs", 176, 1408),
        ("Standard_HX176-96rs", 96, 1408),
        ("Standard_HB120rs_v3", 120, 448),
        ("Standard_NC24ads_A100_v4", 24, 220),
    ):
        size = table.get(name)
        assert (size.vcpus, size.memory_gib) == (vcpus, memory), name
        assert not size.retired
    assert table.get("Standard_HX176rs").rdma and table.get("Standard_HX176rs").sriov
    hbv4 = table.get("Standard_HB176rs_v4")
    assert hbv4.linux_per_hour is None and hbv4.price_status is PriceStatus.UNKNOWN


def test_estimate_ten_h16r_is_about_18_eur_per_hour_marked_retired() -> None:
    ten = estimate("Standard_H16r", nodes=10)
    assert ten.currency == "EUR" and ten.retired_on == "2022-08-31"
    assert ten.per_hour == pytest.approx(18.0, abs=1.0)
    assert ten.dedicated_per_node == pytest.approx(1.8, abs=0.1)
    text = str(ten)
    assert text.startswith("10 x Standard_H16r (dedicated, RETIRED 2022-08-31): 18.00 EUR/hour")
    assert "about 18.00 EUR/hour" in text and "westeurope" in text and "reference" in text
    assert "Standard_HB176rs_v4" in text and "reference only" in text
    assert "retired 2022-08-31" in ten.summary_line()
    assert estimate("standard_h16r", nodes=10) == ten


def test_estimate_refuses_unknown_sizes_and_bad_counts() -> None:
    with pytest.raises(PoolSpecError, match="did you mean"):
        estimate("Standard_H16", nodes=1)
    with pytest.raises(PoolSpecError, match="nodes"):
        estimate("Standard_D2s_v5", nodes=-1)
    assert estimate("Standard_D2s_v5").per_hour == 0.0
    assert estimate("Standard_D2s_v5", nodes=1).retired_on is None


def test_estimate_spot_is_cheaper_and_says_it_assumed() -> None:
    dedicated = estimate("Standard_H16r", nodes=10)
    spot = estimate("Standard_H16r", spot_nodes=10)
    assert spot.per_hour < dedicated.per_hour
    assert any("assumed" in note for note in spot.notes)
    mixed = PoolSpec("hpc", "Standard_HB120rs_v3", nodes=2, spot_nodes=8).estimate()
    assert mixed.per_hour == pytest.approx(mixed.dedicated_per_hour + mixed.spot_per_hour)
    assert "(spot)" in str(mixed) and "(dedicated)" in str(mixed)


def test_estimate_unknown_price_says_so() -> None:
    for unknown in (
        PoolSpec("p", "Standard_HB176rs_v4", nodes=2).estimate(),
        estimate("Standard_H16mr", nodes=2),
    ):
        assert unknown.per_hour is None and not unknown.known
        assert "price unknown" in str(unknown)


def test_estimate_approximate_price_is_flagged() -> None:
    estimate = PoolSpec("p", "Standard_D4s_v5", nodes=4).estimate()
    assert estimate.price_status is PriceStatus.APPROXIMATE
    assert any("not verified" in note for note in estimate.notes)


def test_estimate_autoscale_uses_the_policy_maximum() -> None:
    spec = PoolSpec(
        "p",
        "Standard_HB120rs_v3",
        autoscale=Autoscale.follow_pending_tasks(max_nodes=10, slots_per_node=16),
        task_slots_per_node=16,
    )
    at_most = spec.estimate()
    assert at_most.dedicated_nodes == 10 and at_most.per_hour == pytest.approx(36.4)
    spot = PoolSpec(
        "p",
        "Standard_HB120rs_v3",
        autoscale=Autoscale.follow_pending_tasks(max_nodes=10, spot=True),
    ).estimate()
    assert spot.spot_nodes == 10 and spot.dedicated_nodes == 0
