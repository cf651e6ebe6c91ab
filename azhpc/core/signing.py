"""Per-job keys and HMAC seals: nothing that comes back from storage is unpickled blindly.

Every durable job gets a random key that stays on the machine that submitted it, in a key
ring folder (``~/.azhpc/keys``, or ``$AZHPC_KEY_DIR``), readable only by its owner. The job's
manifest (which pins every payload by its content hash) and each stored outcome are sealed
with an HMAC-SHA256 under that key; reading them back checks the seal first. Storage that is
shared, or written by someone else, can then lose or damage results but never make the
client unpickle bytes it did not produce.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from azhpc.errors import IntegrityError

__all__ = ["IntegrityError", "KeyRing", "seal", "unseal"]

MAC_SIZE = 32


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def seal(key: bytes, data: bytes) -> bytes:
    """``data`` preceded by its HMAC-SHA256 under ``key``."""
    return _mac(key, data) + data


def unseal(key: bytes, sealed: bytes, *, what: str) -> bytes:
    """The data of a :func:`seal` result, after checking its HMAC.

    Raises
    ------
    IntegrityError
        The seal does not match: the data was changed, or sealed under another key.
    """
    mac, data = sealed[:MAC_SIZE], sealed[MAC_SIZE:]
    if len(mac) < MAC_SIZE or not hmac.compare_digest(mac, _mac(key, data)):
        raise IntegrityError(
            f"{what} failed its integrity check: it was changed after it was written, or "
            "written by another job; it is not loaded"
        )
    return data


def mac_hex(key: bytes, data: bytes) -> str:
    """The HMAC-SHA256 of ``data`` under ``key``, as hex (for JSON documents)."""
    return _mac(key, data).hex()


def check_mac_hex(key: bytes, data: bytes, expected: str, *, what: str) -> None:
    """Raise :class:`IntegrityError` unless ``expected`` is ``data``'s HMAC under ``key``."""
    if not hmac.compare_digest(mac_hex(key, data), expected or ""):
        raise IntegrityError(
            f"{what} failed its integrity check: it was changed after it was written; "
            "it is not loaded"
        )


class KeyRing:
    """The folder of per-job keys on this machine.

    Parameters
    ----------
    folder
        Default: ``$AZHPC_KEY_DIR``, else ``~/.azhpc/keys``.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        default = os.environ.get("AZHPC_KEY_DIR") or Path.home() / ".azhpc" / "keys"
        self.folder = Path(folder or default)

    def __repr__(self) -> str:  # the path only: never a key
        return f"<KeyRing {self.folder}>"

    def new_key(self, job_id: str) -> bytes:
        """Create, keep and return a fresh key for ``job_id``."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        path = self.folder / job_id
        tmp = self.folder / f".{job_id}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        os.replace(tmp, path)
        return key

    def key(self, job_id: str) -> bytes:
        """The key of ``job_id``.

        Raises
        ------
        IntegrityError
            This machine has no key for the job (it stays where the job was submitted).
        """
        try:
            return (self.folder / job_id).read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"no key for job {job_id} in {self.folder}: a durable job's results can only "
                "be read where it was submitted. To attach from another machine, copy "
                f"{self.folder / job_id} there (same path, or set AZHPC_KEY_DIR)."
            ) from None

    # -- the public keys of Batch nodes (azhpc.core.node_signing) ----------------------------

    def _node_key_path(self, public: bytes) -> Path:
        return self.folder / "nodes" / public.hex()

    def trust_node_key(self, public: bytes, where: str) -> None:
        """Remember ``public`` as the key of a node of this client's pools (``where`` says
        which: account, pool and node), learned through the Batch API."""
        folder = self.folder / "nodes"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._node_key_path(public)
        if path.exists():
            return
        tmp = folder / f".{public.hex()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(where + "\n")
        os.replace(tmp, path)

    def trusts_node_key(self, public: bytes) -> bool:
        """Whether ``public`` was learned from a node of this client's pools."""
        return len(public) == 32 and self._node_key_path(public).exists()
