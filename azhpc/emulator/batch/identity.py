"""Who a task runs as on an emulated node, and SSH between emulated nodes.

Batch runs a task under its ``userIdentity``: the pool's auto-user (``_azbatch`` on Linux) by
default, or a named account from the pool's ``userAccounts`` (``userIdentity.username``).
Inter-node SSH exists only for a named account with ``linuxUserConfiguration.sshPrivateKey``
in a pool with ``enableInterNodeCommunication``: BatchService.json (2025-06-01),
``LinuxUserConfiguration.sshPrivateKey``: "The private key is used to automatically configure
asymmetric-key based authentication for SSH between Compute Nodes in a Linux Pool when the
Pool's enableInterNodeCommunication property is true ... by placing the key pair into the
user's .ssh directory. If not specified, password-less SSH is not configured between Compute
Nodes". The emulator sets up nothing else, so an MPI run that does not name such an account
cannot start ranks on the other nodes, as on Batch.

Emulated nodes are folders of this machine and every process runs as this machine's user, so
an identity is its environment: ``USER``, ``LOGNAME``, ``HOME`` (``<node>/home/<name>``, with
``.ssh/id_rsa`` holding the account's key) and ``AZ_BATCH_TASK_USER``.

:data:`SSH_STAND_IN` is what ``mpirun`` on an emulated node uses instead of ``ssh`` (Open MPI's
``plm_rsh_agent``): it resolves the node's address (``127.0.x.y``) to its folder, refuses
(``Permission denied (publickey)``, exit 255, as ssh does) unless the caller's
``$HOME/.ssh/id_rsa`` is the key the target node holds for the same user, then runs the command
on this machine in a login environment of that user on that node (``HOME``, and
``SSH_CONNECTION`` naming the target's address, as sshd sets it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azhpc.emulator.batch.model import Node, Pool

__all__ = [
    "AUTO_USER",
    "SSH_STAND_IN",
    "identity_environment",
    "identity_failure",
    "task_user",
    "write_host_map",
    "write_ssh_stand_in",
]

#: The pool auto-user's account name on Linux nodes.
AUTO_USER = "_azbatch"

#: The ``plm_rsh_agent`` of emulated nodes: stands in for ssh between them (module docstring).
SSH_STAND_IN = r"""#!/bin/bash
# azhpc Batch emulator: stands in for ssh between emulated nodes (all on this machine).
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host="$1"; shift
root=$(awk -v h="$host" '$1 == h { print $2 }' "${AZHPC_EMULATED_HOSTS:-/dev/null}")
if [ -z "$root" ]; then
  echo "ssh: Could not resolve hostname $host: Name or service not known" >&2
  exit 255
fi
user="${USER:-$(id -un)}"
if [ ! -f "$HOME/.ssh/id_rsa" ] || ! cmp -s "$HOME/.ssh/id_rsa" "$root/home/$user/.ssh/id_rsa"; then
  echo "$user@$host: Permission denied (publickey)." >&2
  exit 255
fi
export HOME="$root/home/$user" USER="$user" LOGNAME="$user"
# Each node has its own /tmp (Open MPI keeps its session directory there; daemons of
# different "nodes" sharing this machine's /tmp race on it).
mkdir -p "$root/tmp" && export TMPDIR="$root/tmp"
export SSH_CONNECTION="${AZ_BATCH_MASTER_NODE%%:*} 50022 $host 22"
cd "$HOME" || exit 255
exec /bin/bash -c "$*"
"""


def _accounts(pool: Pool) -> dict[str, Mapping[str, Any]]:
    return {str(a.get("name")): a for a in pool.spec.get("userAccounts") or [] if a.get("name")}


def task_user(spec: Mapping[str, Any]) -> str | None:
    """The named account a task body asks for (``userIdentity.username``), or ``None`` for an
    auto-user."""
    identity = spec.get("userIdentity") or {}
    name = identity.get("username")
    return str(name) if name else None


def identity_failure(pool: Pool, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``failureInfo`` of a task whose ``userIdentity.username`` is no account of its pool.

    Batch creates the pool's ``userAccounts`` on every node and runs a task as the one it
    names; a task naming another cannot be launched on the node. Batch's documented task
    failure codes (``TaskFailureInformationCodes``) name no case of its own for this;
    ``CommandLaunchFailed`` ("An error occurred when launching the task's command line") is
    the one that fits.
    """
    name = task_user(spec)
    if name is None or name in _accounts(pool):
        return None
    return {
        "category": "usererror",
        "code": "CommandLaunchFailed",
        "message": f"The user identity {name!r} of the task is not a user account of pool "
        f"{pool.id!r}",
        "details": [{"name": "Message", "value": f"user {name!r} does not exist on the node"}],
    }


def identity_environment(pool: Pool, node: Node, spec: Mapping[str, Any]) -> dict[str, str]:
    """The environment of the task's identity on ``node`` (creating the account's home there,
    with its SSH key when the pool sets up inter-node SSH for it)."""
    name = task_user(spec)
    if name is None:
        return {"AZ_BATCH_TASK_USER": AUTO_USER}
    account = _accounts(pool).get(name) or {}
    home = node.root / "home" / name
    home.mkdir(parents=True, exist_ok=True)
    key = (account.get("linuxUserConfiguration") or {}).get("sshPrivateKey")
    if key and pool.spec.get("enableInterNodeCommunication"):
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        private = ssh / "id_rsa"
        if not private.exists():
            private.touch(mode=0o600)
            private.write_text(str(key).rstrip("\n") + "\n")
    return {"AZ_BATCH_TASK_USER": name, "USER": name, "LOGNAME": name, "HOME": str(home)}


def write_ssh_stand_in(folder: Path) -> Path:
    """Write :data:`SSH_STAND_IN` as ``folder/azhpc-emulated-ssh`` (once) and return its path."""
    path = folder / "azhpc-emulated-ssh"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".azhpc-emulated-ssh.{os.getpid()}"
        temporary.write_text(SSH_STAND_IN)
        temporary.chmod(0o755)
        temporary.replace(path)
    return path


def write_host_map(path: Path, nodes: Sequence[Node]) -> Path:
    """Write ``address folder`` lines for ``nodes`` (what the SSH stand-in resolves)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n.ip_address} {n.root}\n" for n in nodes))
    return path
