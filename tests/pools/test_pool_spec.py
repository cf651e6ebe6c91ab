"""PoolSpec: validation before any request, frozen, unknown keywords, defaults."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import azhpc
from azhpc.pools import (
    MAX_NODES_PER_POOL,
    Autoscale,
    ImageReference,
    PoolCostError,
    PoolSpec,
    PoolSpecError,
    PoolSpecWarning,
)


def refused(field: str, *fragments: str, **kwargs) -> PoolSpecError:
    args = {"pool_id": "p", "vm_size": "Standard_D4s_v5", "nodes": 1} | kwargs
    with pytest.raises(PoolSpecError) as info:
        PoolSpec(**args)
    assert info.value.field == field
    assert f"PoolSpec.{field}" in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)
    return info.value


def test_pool_spec_exported_lazily_from_azhpc() -> None:
    assert azhpc.PoolSpec is PoolSpec
    assert "PoolSpec" in azhpc.__all__


def test_pool_spec_defaults() -> None:
    spec = PoolSpec("p", "standard_d4s_v5", nodes=2)
    assert spec.vm_size == "Standard_D4s_v5"  # normalised to Azure's spelling
    assert spec.image == ImageReference.ubuntu_2204()
    assert spec.image.node_agent_sku_id == "batch.node.ubuntu 22.04"
    assert spec.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert spec.task_slots_per_node == 1 and spec.requirements == ()


def test_pool_spec_is_frozen() -> None:
    spec = PoolSpec("p", "Standard_D4s_v5", nodes=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.nodes = 5  # type: ignore[misc]
    assert dataclasses.replace(spec, nodes=3).nodes == 3


def test_pool_spec_replace_revalidates() -> None:
    spec = PoolSpec("p", "Standard_D4s_v5", nodes=1)
    with pytest.raises(PoolSpecError):
        dataclasses.replace(spec, nodes=-1)


def test_pool_spec_unknown_keyword_lists_valid_ones_with_defaults() -> None:
    with pytest.raises(PoolSpecError) as info:
        PoolSpec("p", "Standard_D4s_v5", nodes=1, dedicated_nodes=4, gpu=True)
    message = str(info.value)
    assert "dedicated_nodes" in message and "gpu" in message
    for valid in (
        "nodes=0",
        "spot_nodes=0",
        "task_slots_per_node=1",
        "mpi=False",
        "max_cost_per_hour=None",
        "inter_node_communication=False",
        "image=Ubuntu",
    ):
        assert valid in message
    assert isinstance(info.value, azhpc.ConfigError) and isinstance(info.value, ValueError)


def test_pool_spec_refuses_bad_pool_id() -> None:
    refused("pool_id", "1-64 letters", pool_id="my pool!")
    refused("pool_id", pool_id="x" * 65)


def test_pool_spec_refuses_unknown_vm_size_with_suggestions() -> None:
    error = refused("vm_size", "did you mean", "Standard_H16r", vm_size="Standard_H16")
    assert "prices.csv" in str(error)
    refused("vm_size", "Standard_D4s_v5", vm_size="D4s_v5x")


@pytest.mark.parametrize("name", ["nodes", "spot_nodes"])
def test_pool_spec_refuses_negative_or_fractional_counts(name: str) -> None:
    refused(name, ">= 0", **{name: -1})
    refused(name, "whole number", **{name: 1.5})


def test_pool_spec_refuses_an_empty_pool() -> None:
    refused("nodes", "nodes=N", "autoscale=", nodes=0, spot_nodes=0)


@pytest.mark.parametrize("name", ["nodes", "spot_nodes"])
def test_pool_spec_refuses_counts_above_the_pool_limit(name: str) -> None:
    refused(name, str(MAX_NODES_PER_POOL), **{name: MAX_NODES_PER_POOL + 1})


def test_pool_spec_refuses_counts_with_autoscale() -> None:
    refused("autoscale", "drop nodes=", autoscale=Autoscale.follow_pending_tasks(max_nodes=2))


def test_pool_spec_refuses_task_slots_outside_batch_range() -> None:
    refused("task_slots_per_node", "between 1 and 16", "4 x 4 vCPUs", task_slots_per_node=17)
    refused("task_slots_per_node", task_slots_per_node=0)
    # 120 vCPUs: 4 x 120 = 480, capped at 256
    refused(
        "task_slots_per_node",
        "between 1 and 256",
        vm_size="Standard_HB120rs_v3",
        task_slots_per_node=257,
    )
    assert PoolSpec("p", "Standard_D4s_v5", nodes=1, task_slots_per_node=16)


def test_pool_spec_refuses_mpi_on_spot_nodes() -> None:
    refused(
        "spot_nodes",
        "spot",
        "dedicated",
        vm_size="Standard_HB120rs_v3",
        nodes=2,
        spot_nodes=2,
        mpi=True,
        inter_node_communication=True,
    )
    with pytest.raises(PoolSpecError, match="spot"):
        PoolSpec(
            "p",
            "Standard_HB120rs_v3",
            mpi=True,
            inter_node_communication=True,
            autoscale=Autoscale.follow_pending_tasks(max_nodes=4, spot=True),
        )


def test_pool_spec_refuses_mpi_without_inter_node_communication() -> None:
    refused(
        "inter_node_communication",
        "inter_node_communication=True",
        vm_size="Standard_HB120rs_v3",
        nodes=4,
        mpi=True,
    )


def test_pool_spec_refuses_mpi_with_several_task_slots() -> None:
    refused(
        "task_slots_per_node",
        "task_slots_per_node=1",
        vm_size="Standard_HB120rs_v3",
        nodes=4,
        mpi=True,
        inter_node_communication=True,
        task_slots_per_node=4,
    )


def test_pool_spec_mpi_on_rdma_size_defaults_to_hpc_image() -> None:
    spec = PoolSpec("mpi", "Standard_HB120rs_v3", nodes=4, mpi=True, inter_node_communication=True)
    assert spec.image == ImageReference.ubuntu_hpc_2204() and spec.image.is_hpc


def test_pool_spec_warns_rdma_mpi_with_non_hpc_image() -> None:
    with pytest.warns(PoolSpecWarning, match="not an HPC image"):
        PoolSpec(
            "mpi",
            "Standard_HC44rs",
            nodes=2,
            mpi=True,
            inter_node_communication=True,
            image=ImageReference.ubuntu_2204(),
        )


@pytest.mark.parametrize(
    ("size", "day", "instead"),
    [
        ("Standard_H16r", "2022-08-31", "Standard_HB176rs_v4"),
        ("standard_h16mr", "2022-08-31", "Standard_HX176rs"),
        ("Standard_NC6s_v3", "2025-09-30", "Standard_NC24ads_A100_v4"),
    ],
)
def test_pool_spec_refuses_retired_sizes_naming_current_ones(size, day, instead) -> None:
    error = refused("vm_size", "retired by Azure on " + day, instead, "estimate(", vm_size=size)
    assert "Use " in str(error)


def test_pool_spec_refuses_retired_size_without_warning_about_its_rdma() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PoolSpecError, match="retired"):
            PoolSpec("mpi", "Standard_H16r", nodes=10, mpi=True, inter_node_communication=True)
    # The other fields' rules come first: a spot MPI pool is refused for being spot.
    with pytest.raises(PoolSpecError, match="spot"):
        PoolSpec("mpi", "Standard_H16r", spot_nodes=2, mpi=True, inter_node_communication=True)


def test_pool_spec_warns_inter_node_communication_on_one_node() -> None:
    with pytest.warns(PoolSpecWarning, match="single node"):
        PoolSpec("p", "Standard_D4s_v5", nodes=1, inter_node_communication=True)


def test_pool_spec_max_cost_per_hour_guard() -> None:
    with pytest.raises(PoolCostError) as info:
        PoolSpec("p", "Standard_HB120rs_v3", nodes=10, max_cost_per_hour=30)
    assert info.value.field == "max_cost_per_hour"
    assert "36.40 EUR/hour" in str(info.value) and "fewer nodes" in str(info.value)
    assert PoolSpec("p", "Standard_HB120rs_v3", nodes=10, max_cost_per_hour=40)


def test_pool_spec_max_cost_refused_when_price_unknown() -> None:
    with pytest.raises(PoolCostError, match="no price on record"):
        PoolSpec("p", "Standard_HB176rs_v4", nodes=2, max_cost_per_hour=100)
    refused(
        "max_cost_per_hour",
        "formula string",
        nodes=0,
        autoscale="$TargetDedicatedNodes = 1;",
        max_cost_per_hour=5,
    )
    refused("max_cost_per_hour", "positive", max_cost_per_hour=0)


def test_pool_spec_requirements_forms(tmp_path) -> None:
    spec = PoolSpec("p", "Standard_D4s_v5", nodes=1, requirements=["numpy", " pandas>=2 "])
    assert spec.requirements == ("numpy", "pandas>=2")
    req = tmp_path / "requirements.txt"
    req.write_text("scipy\n")
    assert PoolSpec("p", "Standard_D4s_v5", nodes=1, requirements=str(req)).requirements == req
    refused("requirements", "does not exist", requirements=str(tmp_path / "missing.txt"))
    refused("requirements", "pass a list", requirements="numpy")


def test_pool_spec_refuses_bad_python_and_container_image() -> None:
    refused("python", "'3.11'", python="3")
    refused("container_image", "myacr.azurecr.io", container_image="bad image")


def test_pool_spec_mpi_formula_string_spot_detection() -> None:
    ok = "$TargetDedicatedNodes = 4;\n$TargetLowPriorityNodes = 0;"
    assert PoolSpec("p", "Standard_HC44rs", autoscale=ok, mpi=True, inter_node_communication=True)
    with pytest.raises(PoolSpecError, match="spot"):
        PoolSpec(
            "p",
            "Standard_HC44rs",
            autoscale="$TargetLowPriorityNodes = 4;",
            mpi=True,
            inter_node_communication=True,
        )
