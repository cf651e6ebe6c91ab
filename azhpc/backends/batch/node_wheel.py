"""The azhpc that Batch nodes run: a wheel of the client's own azhpc, staged in the lake.

azhpc is not on the package index (and a development checkout never is), so the start task
cannot ``pip install azhpc``. Instead the client writes a wheel from the package files of the
azhpc it runs (:data:`~azhpc.version.PACKAGE_FOLDER`: an editable checkout or an installed
wheel alike, no network, no build backend), stores it once in the lake under
``/.azhpc/wheels/``, named by a hash of its content, and hands it to the start task as a
resource file with a read SAS URL. The start task installs it with the exact versions of
cloudpickle and the scientific stack the client uses (:func:`client_pins`).

The wheel is a standard one (PEP 427: ``WHEEL``, ``METADATA``, ``RECORD`` with SHA-256
hashes, ``entry_points.txt`` for the ``azhpc`` command), written deterministically (sorted
entries, fixed timestamps and modes, no ``__pycache__``), so the same files give the same
bytes and the same name.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azhpc.version import PACKAGE_FOLDER, __version__

if TYPE_CHECKING:
    from azhpc.lake.sas import SasSigner

__all__ = [
    "PINNED_PACKAGES",
    "WHEELS_FOLDER",
    "NodeWheel",
    "WheelStager",
    "build_wheel",
    "client_pins",
    "content_hash",
]

#: Packages the nodes get at exactly the client's version (those installed on the client):
#: payloads are pickled here and unpickled there, frames and arrays included; tasks read the
#: lake as the client does (``abfs://`` URLs: fsspec and adlfs); the ``azhpc`` joblib
#: backend's calls are joblib objects; cryptography signs the node's outcomes
#: (:mod:`azhpc.core.node_signing`).
PINNED_PACKAGES = (
    "cloudpickle",
    "numpy",
    "pandas",
    "pyarrow",
    "fsspec",
    "adlfs",
    "joblib",
    "cryptography",
)
#: Where wheels are staged, under the job store's root (``/.azhpc``) in the lake.
WHEELS_FOLDER = "wheels"
#: Zip timestamp of every entry (the earliest a zip can hold), so the bytes do not depend on
#: when or where the files were written.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIPPED_FOLDERS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class NodeWheel:
    """A built wheel: its file name and bytes.

    Attributes
    ----------
    file_name
        ``azhpc-<version>+<hash12>-py3-none-any.whl``.
    data
        The wheel's bytes.
    """

    file_name: str
    data: bytes

    def __repr__(self) -> str:
        return f"<NodeWheel {self.file_name} ({len(self.data)} bytes)>"


def _package_files(folder: str) -> list[tuple[str, str]]:
    """``(archive name, path)`` of every file of the package in ``folder``, sorted."""
    files = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_FOLDERS)
        for name in names:
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            path = os.path.join(parent, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            files.append((f"azhpc/{relative}", path))
    return sorted(files)


def content_hash(folder: str = PACKAGE_FOLDER) -> str:
    """SHA-256 (hex) of the package's files: their names and bytes.

    Parameters
    ----------
    folder
        The ``azhpc`` package folder.
    """
    digest = hashlib.sha256()
    for name, path in _package_files(folder):
        with open(path, "rb") as f:
            data = f.read()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _requires_dist() -> list[str]:
    """azhpc's core requirements, as its installed metadata states them (none when azhpc runs
    from a folder on ``sys.path`` without metadata)."""
    from importlib import metadata

    try:
        requires = metadata.requires("azhpc") or []
    except metadata.PackageNotFoundError:
        return []
    return sorted(r for r in requires if "extra ==" not in r)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(
    folder: str = PACKAGE_FOLDER, *, version: str = __version__, requires: list[str] | None = None
) -> NodeWheel:
    """Write a wheel of the azhpc package in ``folder``.

    Parameters
    ----------
    folder
        The ``azhpc`` package folder (default: the running azhpc's).
    version
        The public version; the wheel's is ``<version>+<first 12 hex digits of the content
        hash>``, so every different set of files is a different wheel.
    requires
        ``Requires-Dist`` lines (default: azhpc's installed core requirements, if any).

    Returns
    -------
    NodeWheel
    """
    full_version = f"{version}+{content_hash(folder)[:12]}"
    dist_info = f"azhpc-{full_version}.dist-info"
    requires = _requires_dist() if requires is None else requires
    metadata_text = "".join(
        [
            "Metadata-Version: 2.1\n",
            "Name: azhpc\n",
            f"Version: {full_version}\n",
            "Summary: azhpc, as built by the client for its Batch nodes\n",
            "Requires-Python: >=3.11\n",
            *(f"Requires-Dist: {r}\n" for r in requires),
        ]
    )
    entries: list[tuple[str, bytes]] = []
    for name, path in _package_files(folder):
        with open(path, "rb") as f:
            entries.append((name, f.read()))
    entries += [
        (f"{dist_info}/METADATA", metadata_text.encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: azhpc.node_wheel\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        ),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nazhpc = azhpc.cli:main\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:  # the package sorted, then the .dist-info, RECORD last
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return NodeWheel(f"azhpc-{full_version}-py3-none-any.whl", buffer.getvalue())


def client_pins() -> list[str]:
    """``name==version`` of each of :data:`PINNED_PACKAGES` installed here; cloudpickle
    (which every node needs) unpinned if it is not."""
    from importlib import metadata

    pins = []
    for name in PINNED_PACKAGES:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name in ("cloudpickle", "cryptography"):  # every node needs them
                pins.append(name)
    return pins


class WheelStager:
    """Builds the client's wheel once and stores it once in the lake; hands out the start
    task's resource file for it.

    Parameters
    ----------
    fs
        The lake's :class:`~azhpc.lake.RootedFileSystem` (blob storage: Batch reads it over
        HTTPS).
    signer
        Signs the read SAS URL; use one with the longest lifetime it allows
        (:data:`azhpc.lake.sas.DEFAULT_LIFETIME`): nodes that join the pool later download the
        wheel with the URL given when the pool was created.
    root
        The job store's folder in the lake (``/.azhpc``).
    folder
        The azhpc package to build (default: the running azhpc's).
    """

    def __init__(
        self, fs: Any, signer: SasSigner, *, root: str = "/.azhpc", folder: str = PACKAGE_FOLDER
    ) -> None:
        self.fs = fs
        self.signer = signer
        self.root = root.rstrip("/")
        self.folder = folder
        self._lock = threading.Lock()
        self._staged: str | None = None
        self._sha256: str | None = None

    def __repr__(self) -> str:
        return f"<WheelStager {self.root}/{WHEELS_FOLDER}>"

    def stage(self) -> str:
        """Store the wheel in the lake unless it is there already; return its lake path."""
        with self._lock:
            if self._staged is None:
                wheel = build_wheel(self.folder)
                self._sha256 = hashlib.sha256(wheel.data).hexdigest()
                path = f"{self.root}/{WHEELS_FOLDER}/{wheel.file_name}"
                if not self.fs.exists(path):
                    # Content-addressed: one upload, visible only once complete; a concurrent
                    # client writes the same bytes.
                    self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                    self.fs.pipe_file(path, wheel.data)
                self._staged = path
            return self._staged

    def sha256(self) -> str:
        """The SHA-256 (hex) of the wheel's bytes, which the start task checks before it
        installs the file it downloaded (the lake may have been written by others)."""
        self.stage()
        assert self._sha256 is not None
        return self._sha256

    def resource_file(self) -> dict[str, str]:
        """The start task's REST ``ResourceFile``: the wheel's read SAS URL and its file name
        in the start task's working folder."""
        path = self.stage()
        return {
            "httpUrl": self.signer.blob_url(path.lstrip("/")),
            "filePath": path.rsplit("/", 1)[1],
        }
