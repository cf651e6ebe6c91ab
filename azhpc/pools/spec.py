"""``PoolSpec``: what a Batch pool should be, checked before any request is sent.

A ``PoolSpec`` that exists is valid: every rule runs when it is built (see ``docs/pools.md``
for the list), and a broken spec raises :class:`~azhpc.errors.PoolSpecError` naming the
field and the fix. Nothing here imports an Azure SDK or talks to Azure.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from azhpc.errors import PoolCostError, PoolSpecError, PoolSpecWarning
from azhpc.pools.autoscale import Autoscale
from azhpc.pools.catalog import VmSize, lookup_size, price_table, retirement_message
from azhpc.pools.estimate import CostEstimate, estimate_cost

__all__ = ["MAX_NODES_PER_POOL", "ImageReference", "PoolSpec"]

#: azhpc's own guard against typos such as ``nodes=1000`` for ``nodes=10``: the most nodes of
#: each kind one spec may ask for. Batch's real limit is the account's core quota.
MAX_NODES_PER_POOL = 500
#: Batch: "The ID can contain any combination of alphanumeric characters including hyphens and
#: underscores, and cannot contain more than 64 characters."
_POOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A formula statement that sets a spot target other than a literal 0.
_SETS_SPOT = re.compile(r"\$TargetLowPriorityNodes\s*=(?!=)(?!\s*0\s*;)")
_PYTHON = re.compile(r"^3\.\d{1,2}$")
#: Batch: a formula string cannot exceed 8 KB.
_MAX_FORMULA_BYTES = 8 * 1024
_REQUIREMENT_FILES = (".txt", ".yml", ".yaml")


@dataclass(frozen=True)
class ImageReference:
    """A marketplace image and the Batch node agent that goes with it.

    Attributes
    ----------
    publisher, offer, sku, version
        The Azure Marketplace image.
    node_agent_sku_id
        The Batch node agent for that image (Batch requires the pair to match).
    """

    publisher: str
    offer: str
    sku: str
    node_agent_sku_id: str
    version: str = "latest"

    @classmethod
    def ubuntu_2204(cls) -> ImageReference:
        """Ubuntu Server 22.04 LTS (Canonical), the default."""
        return cls(
            "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts", "batch.node.ubuntu 22.04"
        )

    @classmethod
    def ubuntu_hpc_2204(cls) -> ImageReference:
        """Ubuntu-HPC 22.04 (``microsoft-dsvm:ubuntu-hpc:2204``): Mellanox OFED, HPC-X, Intel
        MPI and MVAPICH2 preinstalled for SR-IOV RDMA sizes (HB, HC, ...), and Moby for
        containers."""
        return cls("microsoft-dsvm", "ubuntu-hpc", "2204", "batch.node.ubuntu 22.04")

    @property
    def is_hpc(self) -> bool:
        """Whether this is one of Azure's HPC images (RDMA drivers and MPI preinstalled)."""
        return (self.publisher.lower(), self.offer.lower()) in {
            ("microsoft-dsvm", "ubuntu-hpc"),
            ("almalinux", "almalinux-hpc"),
            ("openlogic", "centos-hpc"),
        }

    def to_batch(self) -> dict[str, str]:
        """The REST ``imageReference`` object."""
        return {
            "publisher": self.publisher,
            "offer": self.offer,
            "sku": self.sku,
            "version": self.version,
        }


def _client_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True, init=False)
class PoolSpec:
    """A Batch pool, described in Python and validated before any request.

    Parameters
    ----------
    pool_id
        The pool's id: letters, digits, ``-`` and ``_``, at most 64 characters.
    vm_size
        A current Azure VM size from the catalogue
        (``azhpc.pools.price_table().names(retired=False)``), e.g. ``"Standard_HB120rs_v3"``;
        case-insensitive. Sizes Azure has retired are refused (their offline estimate is
        :func:`azhpc.pools.estimate`).
    nodes
        Dedicated nodes (fixed size). Default 0.
    spot_nodes
        Spot (low-priority) nodes (fixed size): cheaper, can be preempted. Default 0.
    image
        Marketplace image + node agent. Default Ubuntu 22.04 LTS, or Ubuntu-HPC 22.04 for MPI
        on an RDMA size and for ``container_image``.
    python
        The Python ``major.minor`` the start task installs. Default: this interpreter's.
    requirements
        pip requirement strings, or the path of a ``requirements.txt`` or ``environment.yml``.
    task_slots_per_node
        Tasks a node runs at once: 1..min(256, 4 x vCPUs). Default 1.
    inter_node_communication
        Let nodes talk to each other directly (needed for MPI). Default ``False``.
    container_image
        Run tasks in this container image (e.g. ``"myacr.azurecr.io/app:1"``).
    autoscale
        An :class:`~azhpc.pools.autoscale.Autoscale` policy or a Batch formula string, instead of
        ``nodes`` / ``spot_nodes``.
    max_cost_per_hour
        Refuse the spec when its estimate (in the price table's currency) is higher.
    mpi
        This pool will run MPI multi-instance tasks: the start task also installs Open MPI
        (unless the image is an HPC image, whose HPC-X it loads with ``hpcx-init.sh``) and
        mpi4py, and records where ``mpirun`` is (and UCX settings on InfiniBand sizes).
        With ``inter_node_communication`` the pool gets the user account ``azhpc`` with an
        SSH key pair of its own, which MPI ranks run as.
    apt_packages
        Debian/Ubuntu packages the start task installs first (``apt-get install``), e.g.
        ``("build-essential",)``.
    idle_shutdown_minutes
        A fixed-size pool scales itself to zero nodes after this many minutes without any
        task, and back to its size when tasks come (Batch evaluates it every 5 minutes), so
        a pool that a killed client could not delete stops billing on its own. ``"auto"``
        (default): 60 minutes on Azure, none on the Batch emulator (no money is involved, and
        the embedded emulator ends with the client). ``None``: keep the nodes until the pool
        is deleted.

    Raises
    ------
    PoolSpecError
        A field is wrong; the message names it and says what to do. Unknown keyword arguments
        are refused with the list of valid ones and their defaults.
        A size Azure has retired is refused last (after the other fields' rules), naming
        its current successors.
    PoolCostError
        The estimate is above ``max_cost_per_hour``.

    Examples
    --------
    >>> spec = PoolSpec("hpc", "Standard_HB120rs_v3", nodes=10)  # doctest: +SKIP
    >>> print(spec.estimate())  # doctest: +SKIP
    10 x Standard_HB120rs_v3 (dedicated): 36.40 EUR/hour (3.640 per node)
    ...
    """

    pool_id: str
    vm_size: str
    nodes: int = 0
    spot_nodes: int = 0
    image: ImageReference = field(default_factory=ImageReference.ubuntu_2204)
    python: str = field(default_factory=_client_python)
    requirements: tuple[str, ...] | Path = ()
    task_slots_per_node: int = 1
    inter_node_communication: bool = False
    container_image: str | None = None
    autoscale: Autoscale | str | None = None
    max_cost_per_hour: float | None = None
    mpi: bool = False
    apt_packages: tuple[str, ...] = ()
    idle_shutdown_minutes: int | str | None = "auto"

    def __init__(
        self,
        pool_id: str,
        vm_size: str,
        *,
        nodes: int = 0,
        spot_nodes: int = 0,
        image: ImageReference | None = None,
        python: str | None = None,
        requirements: Sequence[str] | str | Path = (),
        task_slots_per_node: int = 1,
        inter_node_communication: bool = False,
        container_image: str | None = None,
        autoscale: Autoscale | str | None = None,
        max_cost_per_hour: float | None = None,
        mpi: bool = False,
        apt_packages: Sequence[str] = (),
        idle_shutdown_minutes: int | str | None = "auto",
        **unknown: Any,
    ) -> None:
        if unknown:
            raise PoolSpecError("", _unknown_message(unknown))
        size = lookup_size(vm_size)
        values = {
            "pool_id": pool_id,
            "vm_size": size.name,
            "nodes": nodes,
            "spot_nodes": spot_nodes,
            "image": image if image is not None else _default_image(size, mpi, container_image),
            "python": python if python is not None else _client_python(),
            "requirements": _normalise_requirements(requirements),
            "task_slots_per_node": task_slots_per_node,
            "inter_node_communication": inter_node_communication,
            "container_image": container_image,
            "autoscale": autoscale,
            "max_cost_per_hour": max_cost_per_hour,
            "mpi": mpi,
            "apt_packages": _normalise_apt_packages(apt_packages),
            "idle_shutdown_minutes": idle_shutdown_minutes,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        _validate(self, size, image_given=image is not None)

    # -- derived ------------------------------------------------------------------------------

    @property
    def size(self) -> VmSize:
        """The catalogue entry of :attr:`vm_size`."""
        size = price_table().get(self.vm_size)
        assert size is not None  # checked when the spec was built
        return size

    @property
    def uses_spot(self) -> bool:
        """Whether the pool can have spot (low-priority) nodes."""
        if isinstance(self.autoscale, Autoscale):
            return self.autoscale.spot
        if isinstance(self.autoscale, str):
            return _SETS_SPOT.search(self.autoscale) is not None
        return self.spot_nodes > 0

    def estimate(self) -> CostEstimate:
        """The cost per hour of this pool at its target size, offline, from the price table.

        With an :class:`Autoscale` policy the estimate is for its maximum node count; with a
        formula string the node count is unknown and the estimate is for zero nodes (a note
        says so). ``azhpc.Pool.estimate()`` (Batch backend) delegates here.

        Returns
        -------
        CostEstimate
        """
        notes: list[str] = []
        dedicated, spot = self.nodes, self.spot_nodes
        if isinstance(self.autoscale, Autoscale):
            dedicated, spot = (
                (0, self.autoscale.max_nodes)
                if self.autoscale.spot
                else (self.autoscale.max_nodes, 0)
            )
            notes.append(
                f"autoscale: estimate at the policy's maximum of {self.autoscale.max_nodes} "
                "node(s); an idle autoscaled pool costs less"
            )
        elif isinstance(self.autoscale, str):
            notes.append("autoscale formula: node count unknown until Batch evaluates it")
        return estimate_cost(self.size, dedicated, spot, extra_notes=tuple(notes))


# -- construction helpers ------------------------------------------------------------------------


def _defaults_text() -> str:
    shown = []
    for f in fields(PoolSpec):
        if f.name in ("pool_id", "vm_size"):
            shown.append(f"{f.name} (required)")
        elif f.name == "image":
            shown.append("image=Ubuntu 22.04 LTS (batch.node.ubuntu 22.04)")
        elif f.name == "python":
            shown.append(f"python={_client_python()!r} (this interpreter)")
        else:
            shown.append(f"{f.name}={f.default!r}")
    return ", ".join(shown)


def _unknown_message(unknown: dict[str, Any]) -> str:
    return (
        f"PoolSpec got unknown keyword argument(s) {', '.join(sorted(unknown))}; valid ones "
        f"(with defaults): {_defaults_text()}"
    )


def _default_image(size: VmSize, mpi: bool, container_image: str | None) -> ImageReference:
    if (mpi and size.rdma) or container_image:
        return ImageReference.ubuntu_hpc_2204()
    return ImageReference.ubuntu_2204()


def _normalise_requirements(requirements: object) -> tuple[str, ...] | Path:
    if isinstance(requirements, Path | str):
        path = Path(requirements)
        if path.suffix.lower() not in _REQUIREMENT_FILES:
            raise PoolSpecError(
                "requirements",
                f"a single string must be the path of a requirements.txt or environment.yml, "
                f"got {requirements!r}; pass a list for requirement strings, e.g. "
                f"requirements=[{str(requirements)!r}]",
            )
        if not path.is_file():
            raise PoolSpecError(
                "requirements", f"file {str(path)!r} does not exist; check the path"
            )
        return path.resolve()
    if isinstance(requirements, Sequence) and all(isinstance(r, str) for r in requirements):
        cleaned = tuple(r.strip() for r in requirements if r.strip())
        for requirement in cleaned:
            if "\n" in requirement or "'" in requirement:
                raise PoolSpecError(
                    "requirements",
                    f"{requirement!r} is not one pip requirement; give one per list item",
                )
        return cleaned
    raise PoolSpecError(
        "requirements",
        "must be a list of pip requirement strings or the path of a requirements.txt / "
        f"environment.yml, got {type(requirements).__name__}",
    )


_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?$")


def _normalise_apt_packages(packages: object) -> tuple[str, ...]:
    if isinstance(packages, str):
        packages = packages.split()
    if not isinstance(packages, Sequence) or not all(isinstance(p, str) for p in packages):
        raise PoolSpecError("apt_packages", f"must be a list of package names, got {packages!r}")
    bad = [p for p in packages if not _APT_NAME.match(p)]
    if bad:
        raise PoolSpecError(
            "apt_packages",
            f"{bad[0]!r} is not a Debian package name (lower-case letters, digits, '+', '-', "
            "'.'; optionally =version), e.g. 'build-essential'",
        )
    return tuple(packages)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(spec: PoolSpec, size: VmSize, *, image_given: bool) -> None:
    def refuse(field_name: str, message: str) -> None:
        raise PoolSpecError(field_name, message)

    if not isinstance(spec.pool_id, str) or not _POOL_ID.match(spec.pool_id):
        refuse(
            "pool_id",
            f"{spec.pool_id!r} is not a valid Batch pool id: use 1-64 letters, digits, '-' or "
            "'_', e.g. 'azhpc-pool-1'",
        )
    for name in ("nodes", "spot_nodes"):
        value = getattr(spec, name)
        if not _is_count(value) or value < 0:
            refuse(name, f"must be a whole number >= 0, got {value!r}")
        if value > MAX_NODES_PER_POOL:
            refuse(
                name,
                f"{value} nodes is above azhpc's limit of {MAX_NODES_PER_POOL} per pool; if you "
                "really mean it, split the work over several pools",
            )
    autoscale = spec.autoscale
    if autoscale is None:
        if spec.nodes == 0 and spec.spot_nodes == 0:
            refuse(
                "nodes",
                "the pool would have no nodes: set nodes=N (dedicated), spot_nodes=N, or "
                "autoscale=Autoscale.follow_pending_tasks(max_nodes=N)",
            )
    else:
        if spec.nodes or spec.spot_nodes:
            refuse(
                "autoscale",
                "an autoscaled pool's size comes from its formula: drop nodes=/spot_nodes= or "
                "drop autoscale=",
            )
        if isinstance(autoscale, str):
            if not autoscale.strip() or len(autoscale.encode()) > _MAX_FORMULA_BYTES:
                refuse("autoscale", "a formula string must be non-empty and at most 8 KB")
        elif not isinstance(autoscale, Autoscale):
            refuse(
                "autoscale",
                "must be an Autoscale (e.g. Autoscale.follow_pending_tasks(max_nodes=4)) or a "
                f"Batch formula string, got {type(autoscale).__name__}",
            )
        elif autoscale.max_nodes > MAX_NODES_PER_POOL:
            refuse(
                "autoscale",
                f"max_nodes={autoscale.max_nodes} is above azhpc's limit of "
                f"{MAX_NODES_PER_POOL} per pool",
            )
    idle = spec.idle_shutdown_minutes
    if idle not in ("auto", None):
        if not _is_count(idle) or idle < 1:
            refuse(
                "idle_shutdown_minutes",
                f'must be a whole number of minutes >= 1, "auto" or None, got {idle!r}',
            )
        if autoscale is not None:
            refuse(
                "idle_shutdown_minutes",
                "applies to fixed-size pools; an autoscaled pool says when to go to zero in "
                "its policy: Autoscale.scale_to_zero_when_idle(idle_minutes=...)",
            )
    slots = spec.task_slots_per_node
    if not _is_count(slots) or not 1 <= slots <= size.max_task_slots:
        refuse(
            "task_slots_per_node",
            f"must be between 1 and {size.max_task_slots} on {size.name} (Batch allows at most "
            f"min(256, 4 x {size.vcpus} vCPUs)), got {slots!r}",
        )
    if not isinstance(spec.image, ImageReference):
        refuse("image", "must be an ImageReference, e.g. ImageReference.ubuntu_2204()")
    if not isinstance(spec.python, str) or not _PYTHON.match(spec.python):
        refuse("python", f"must be a major.minor version such as '3.11', got {spec.python!r}")
    if spec.container_image is not None and (
        not isinstance(spec.container_image, str)
        or not spec.container_image.strip()
        or any(c.isspace() for c in spec.container_image)
    ):
        refuse(
            "container_image",
            f"must be an image name such as 'myacr.azurecr.io/app:1', got {spec.container_image!r}",
        )
    for flag in ("inter_node_communication", "mpi"):
        if not isinstance(getattr(spec, flag), bool):
            refuse(flag, f"must be True or False, got {getattr(spec, flag)!r}")
    if spec.mpi:
        if spec.uses_spot:
            refuse(
                "spot_nodes",
                "MPI multi-instance tasks cannot run on spot nodes: one preempted node kills the "
                "whole run; use nodes=N (dedicated) for an MPI pool",
            )
        if not spec.inter_node_communication:
            refuse(
                "inter_node_communication",
                "MPI needs nodes that talk to each other: set inter_node_communication=True",
            )
        if slots != 1:
            refuse(
                "task_slots_per_node",
                "Batch runs multi-instance (MPI) tasks only on pools with one task slot per "
                "node: set task_slots_per_node=1",
            )
        _warn_about_mpi_image(spec, size, image_given=image_given)
    elif spec.inter_node_communication and autoscale is None and spec.nodes + spec.spot_nodes < 2:
        warnings.warn(
            f"PoolSpec.inter_node_communication on pool {spec.pool_id!r} with a single node has "
            "nothing to talk to and can make nodes harder to allocate",
            PoolSpecWarning,
            stacklevel=3,
        )
    if size.retired:
        # Azure refuses to create a retired size (learn.microsoft.com: "H-series retirement",
        # "NCv3 and NC6s NC12s NC24s Retirement"): refuse it here, before any request.
        refuse("vm_size", retirement_message(size))
    _check_cost(spec)


def _warn_about_mpi_image(spec: PoolSpec, size: VmSize, *, image_given: bool) -> None:
    if not size.rdma or size.retired:
        return  # a retired size is refused next
    if not size.sriov:
        warnings.warn(
            f"{size.name} exposes RDMA through Network Direct (not SR-IOV): MPI over InfiniBand "
            "there needs Intel MPI with the ND drivers of the retired CentOS-HPC 7 images, which "
            "Batch no longer supports; MPI will fall back to TCP. For RDMA use an SR-IOV size "
            "such as Standard_HB120rs_v3 or Standard_HB176rs_v4.",
            PoolSpecWarning,
            stacklevel=4,
        )
    elif image_given and not spec.image.is_hpc:
        warnings.warn(
            f"PoolSpec.image: {spec.image.publisher}/{spec.image.offer} is not an HPC image, so "
            f"{size.name}'s InfiniBand has no drivers and MPI will run over TCP; use "
            "ImageReference.ubuntu_hpc_2204() (or leave image= unset)",
            PoolSpecWarning,
            stacklevel=4,
        )


def _check_cost(spec: PoolSpec) -> None:
    limit = spec.max_cost_per_hour
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
        raise PoolSpecError(
            "max_cost_per_hour", f"must be a positive number per hour, got {limit!r}"
        )
    if isinstance(spec.autoscale, str):
        raise PoolSpecError(
            "max_cost_per_hour",
            "cannot be checked against a formula string (its node count is unknown): use an "
            "Autoscale helper, whose max_nodes bounds the cost, or drop the guard",
        )
    estimate = spec.estimate()
    total = estimate.per_hour
    if total is None:
        raise PoolCostError(
            "max_cost_per_hour",
            f"no price on record for {spec.vm_size}, so the guard cannot be checked: drop "
            "max_cost_per_hour or choose a size with a price",
        )
    if total > limit:
        raise PoolCostError(
            "max_cost_per_hour",
            f"the pool is estimated at {total:.2f} {estimate.currency}/hour, above the limit of "
            f"{limit:.2f}: use fewer nodes, spot nodes, a smaller size, or raise the limit\n"
            f"{estimate}",
        )
