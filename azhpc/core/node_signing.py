"""Outcomes signed by the Batch node that produced them, with a key that never leaves it.

A Batch task's outcome travels through the lake, which others may be able to write (anyone
with the storage account's keys or a write role, and anyone who can read the job's task
definitions, which carry the write SAS of its outputs). So a node cannot authenticate what it
writes with anything the job definition or the lake holds. Instead each node makes its own
Ed25519 key pair when its start task runs (:func:`prepare_node`): the private key stays in a
node-local file outside the folders Batch serves (``$AZ_BATCH_NODE_ROOT_DIR/../azhpc-private``);
the public key goes into the node's environment record (``shared/azhpc/environment.json``),
which only the node can write and the client reads through the Batch API (not the lake).

Each outcome file is ``MAGIC``, the node id, the node's public key, an Ed25519 signature over
the job id, the task id and the outcome's SHA-256, then the outcome. The client accepts it only
if the public key is one it learned from a node of its own pools through Batch
(:class:`~azhpc.core.signing.KeyRing` keeps them), and the signature is right for this job and
this task (an outcome copied from another task or job is refused).

``cryptography`` (a dependency of azure-identity, pinned on the nodes) is imported on use.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

from azhpc.errors import IntegrityError

__all__ = [
    "MAGIC",
    "node_key_path",
    "open_outcome",
    "outcome_node",
    "prepare_node",
    "sign_outcome",
]

#: The first bytes of a node-signed outcome.
MAGIC = b"AZO1"
_CONTEXT = b"azhpc-outcome-v1\0"
_PUBLIC_SIZE = 32
_SIGNATURE_SIZE = 64


def node_key_path(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """Where this node's private key is: beside the Batch root folder, not in it (the Batch
    file API serves everything under ``$AZ_BATCH_NODE_ROOT_DIR``)."""
    env = os.environ if environ is None else environ
    root = Path(env["AZ_BATCH_NODE_ROOT_DIR"])
    return root.parent / "azhpc-private" / env["AZ_BATCH_NODE_ID"] / "node.key"


def prepare_node(record: str | os.PathLike[str], private: str | os.PathLike[str]) -> str:
    """Make the node's key pair, unless it has one (the private key readable by the node's
    task users, in a folder of its own), and write the environment record with the public
    key; returns the public key (hex). Run by the start task, each time it runs."""
    import platform
    import sys

    import cloudpickle
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from azhpc.version import __version__

    private = Path(private)
    try:  # the start task runs again after a reboot: the node keeps its key
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private.read_text()))
    except (OSError, ValueError):
        key = Ed25519PrivateKey.generate()
        private.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(private.parent, 0o755)  # tasks run as another user than the start task
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        _write_atomically(private, raw.hex().encode(), 0o644)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    environment = {
        "python": platform.python_version(),
        "cloudpickle": cloudpickle.__version__,
        "azhpc": __version__,
        "node_key": public.hex(),
        "executable": sys.executable,
    }
    record = Path(record)
    record.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(record, json.dumps(environment).encode(), 0o644)
    return public.hex()


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with open(temporary, "wb") as f:
        f.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def _message(job_id: str, task_id: str, data: bytes) -> bytes:
    return (
        _CONTEXT
        + job_id.encode()
        + b"\0"
        + task_id.encode()
        + b"\0"
        + hashlib.sha256(data).digest()
    )


def sign_outcome(
    private: str | os.PathLike[str], job_id: str, task_id: str, node_id: str, data: bytes
) -> bytes:
    """The outcome file of ``data``, signed with the node's private key in ``private``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(Path(private).read_text()))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    node = node_id.encode()
    signature = key.sign(_message(job_id, task_id, data))
    return MAGIC + struct.pack(">H", len(node)) + node + public + signature + data


def _parse(blob: bytes) -> tuple[str, bytes, bytes, bytes] | None:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 2:
        return None
    (size,) = struct.unpack(">H", blob[len(MAGIC) : len(MAGIC) + 2])
    start = len(MAGIC) + 2
    end = start + size + _PUBLIC_SIZE + _SIGNATURE_SIZE
    if len(blob) < end:
        return None
    node = blob[start : start + size].decode(errors="replace")
    public = blob[start + size : start + size + _PUBLIC_SIZE]
    signature = blob[start + size + _PUBLIC_SIZE : end]
    return node, public, signature, blob[end:]


def outcome_node(blob: bytes) -> str | None:
    """The node a signed outcome says it comes from (``None``: not a signed outcome)."""
    parsed = _parse(blob)
    return parsed[0] if parsed is not None else None


def open_outcome(
    blob: bytes,
    job_id: str,
    task_id: str,
    trusted: Callable[[str, bytes], bool],
    *,
    what: str,
) -> bytes:
    """The outcome in a signed outcome file, after checking it.

    Parameters
    ----------
    blob
        The file's bytes.
    job_id, task_id
        The task it must be the outcome of.
    trusted
        ``trusted(node_id, public_key)``: whether the key is one learned from that node of
        the client's own pools through Batch (it may go and learn it).
    what
        What the outcome is, for messages.

    Raises
    ------
    IntegrityError
        Not a signed outcome, signed with a key the client does not trust, or signed for
        another task or job, or changed since.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    parsed = _parse(blob)
    if parsed is None:
        raise IntegrityError(f"{what} is not an outcome a Batch node signed; it is not loaded")
    node, public, signature, data = parsed
    if not trusted(node, public):
        raise IntegrityError(
            f"{what} is signed with a key that no node of this client's pools holds (it "
            f"claims node {node!r}): it was written by someone else; it is not loaded"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            signature, _message(job_id, task_id, data)
        )
    except InvalidSignature:
        raise IntegrityError(
            f"{what} failed its signature check: it was changed after node {node!r} wrote "
            "it, or it is the outcome of another task; it is not loaded"
        ) from None
    return data
