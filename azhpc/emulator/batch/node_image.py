"""What an emulated node is before its start task runs: a clean machine.

A Batch node starts from its marketplace image: an operating system, a system Python at
best, no Python packages, and the internet. An emulated node is a folder on this machine, so
the emulator gives its processes an environment that stands in for that image and nothing of
the client's (no ``PYTHONPATH``, no ``VIRTUAL_ENV``, no client site-packages):

- ``PATH``: the image's ``bin`` folder first, then the system folders. In it ``python3`` and
  ``python3.X`` are this machine's base interpreter (outside any virtual environment), and
  ``curl`` and ``apt-get`` are the stand-ins below.
- **The package index** is a folder of wheels, repacked from the distributions installed with
  the emulator's own interpreter (built once per set of installed versions, reused by every
  node and every run). ``uv`` and ``pip`` are pointed at it with no index at all (a
  ``uv.toml`` with ``no-index``, ``PIP_NO_INDEX``/``PIP_FIND_LINKS``), so a start task
  installs what it asks for, offline, and fails as it would on Azure when a package is not
  there: ``azhpc`` itself is never in it (it is not on the package index; the client stages
  its own wheel, :mod:`azhpc.backends.batch.node_wheel`).
- **The network**: ``curl`` serves astral.sh's uv installer (which puts this machine's ``uv``
  binary where the installer would) and fails as an unresolvable host for anything else.
  ``uv`` does not download Python builds (``python-downloads = "never"``): the image's
  interpreter is the only one.
- ``apt-get`` installs nothing: it succeeds for packages this machine has (``dpkg``) and fails
  with apt's own "Unable to locate package" for the others.

Those three stand-ins are the boundary that cannot run here (no internet, no per-node system
packages); everything above them is the real start task, run as Azure runs it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "DEFAULT_CACHE",
    "UV_INSTALLER_URL",
    "NodeImage",
    "image_cache_folder",
    "node_image",
    "repack_distribution",
]

#: Where the image (its ``bin`` folder, the wheel index, uv's cache) is kept, unless
#: ``AZHPC_EMULATOR_CACHE`` says otherwise.
DEFAULT_CACHE = "~/.cache/azhpc/emulator"
#: The URL of uv's installer, the one download the start task makes outside the package index.
UV_INSTALLER_URL = "https://astral.sh/uv/install.sh"
#: The system folders of the image's ``PATH`` (Ubuntu's default).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Distribution files that belong to an installation, not to a wheel.
_INSTALL_RECORDS = frozenset({"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"})
_EPOCH = (1980, 1, 1, 0, 0, 0)

_lock = threading.Lock()
_images: dict[Path, NodeImage] = {}


@dataclass(frozen=True)
class NodeImage:
    """An emulated node's image, ready to use.

    Attributes
    ----------
    bin
        The image's ``bin`` folder (first on ``PATH``).
    index
        The folder of wheels that stands in for the package index.
    uv_cache
        uv's cache, shared by the nodes (installs are links into it).
    link_mode
        How uv puts packages from its cache into a node's environment (``hardlink`` when the
        cache and the nodes share a file system, ``copy`` otherwise).
    uv
        This machine's uv binary, which the installer stand-in copies (``None``: not installed).
    """

    bin: Path
    index: Path
    uv_cache: Path
    link_mode: str
    uv: str | None

    def environment(self, home: Path) -> dict[str, str]:
        """The environment every process of a node starts from (the ``AZ_BATCH_*`` variables
        are added by the caller)."""
        return {
            "PATH": f"{self.bin}:{SYSTEM_PATH}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SHELL": "/bin/bash",
            # uv's settings file ("/etc/uv/uv.toml" of the image): `uv venv` takes no-index
            # from there, not from the environment
            "UV_CONFIG_FILE": str(self.index.parent / "uv.toml"),
            "UV_FIND_LINKS": str(self.index),
            "UV_CACHE_DIR": str(self.uv_cache),
            "UV_LINK_MODE": self.link_mode,
            "UV_NO_PROGRESS": "1",
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(self.index),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }


def image_cache_folder() -> Path:
    """``AZHPC_EMULATOR_CACHE``, else :data:`DEFAULT_CACHE` (under ``XDG_CACHE_HOME`` when
    that is set)."""
    explicit = os.environ.get("AZHPC_EMULATOR_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "azhpc" / "emulator"
    return Path(DEFAULT_CACHE).expanduser()


def node_image(nodes_root: Path, cache: Path | None = None) -> NodeImage:
    """The image for nodes whose folders are under ``nodes_root``: built on first use (the
    wheel index once per set of installed distributions), then reused.

    Parameters
    ----------
    nodes_root
        The emulator's root folder (decides uv's link mode).
    cache
        Where the image is kept (default :func:`image_cache_folder`).
    """
    cache = (cache or image_cache_folder()).resolve()
    with _lock:
        image = _images.get(cache)
        if image is None:
            cache.mkdir(parents=True, exist_ok=True)
            with _file_lock(cache / ".lock"):
                index = _wheel_index(cache)
                bin_folder = _bin_folder(cache)
                _write_atomically(
                    cache / "uv.toml",
                    "# the emulated nodes' uv: the image's package index only, its Python only\n"
                    f"no-index = true\nfind-links = [{json.dumps(str(index))}]\n"
                    'python-downloads = "never"\n',
                )
            uv_cache = cache / "uv-cache"
            uv_cache.mkdir(exist_ok=True)
            image = NodeImage(bin_folder, index, uv_cache, "copy", _uv_binary())
            _images[cache] = image
    nodes_root.mkdir(parents=True, exist_ok=True)
    same_device = os.stat(image.uv_cache).st_dev == os.stat(nodes_root).st_dev
    link_mode = "hardlink" if same_device else "copy"
    return NodeImage(image.bin, image.index, image.uv_cache, link_mode, image.uv)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (emulators of parallel test runs share a cache)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the package index ----------------------------------------------------------------------


def _installed() -> list[metadata.Distribution]:
    """The distributions of this interpreter that a wheel can be rebuilt from: with a list of
    their files (``RECORD``), not editable, azhpc never."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if not name or name == "azhpc" or name in found:
            continue
        if dist.files is None:
            continue
        direct = dist.read_text("direct_url.json") or ""
        if '"editable": true' in direct.replace(" ", "").replace('":true', '": true'):
            continue
        found[name] = dist
    return [found[name] for name in sorted(found)]


def _wheel_index(cache: Path) -> Path:
    """The folder of wheels of :func:`_installed`, keyed by their names and versions; older
    indexes (another set of versions) are removed."""
    dists = _installed()
    key = hashlib.sha256(
        "\n".join([sys.version, *(f"{d.metadata['Name']}=={d.version}" for d in dists)]).encode()
    ).hexdigest()[:16]
    index = cache / f"index-{key}"
    if index.is_dir():
        return index
    building = Path(tempfile.mkdtemp(prefix=f".index-{key}-", dir=cache))
    try:
        for dist in dists:
            with contextlib.suppress(_NotRepackable):
                repack_distribution(dist, building)
        os.replace(building, index)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    for old in cache.glob("index-*"):
        if old != index:
            shutil.rmtree(old, ignore_errors=True)
    return index


class _NotRepackable(Exception):
    """A distribution whose files cannot be put back into a wheel."""


def _wheel_tags(wheel_text: str) -> str:
    """The compressed tag set of a wheel's file name (``cp311-cp311-manylinux_...``), from the
    ``Tag:`` lines of its ``WHEEL`` file."""
    tags = [
        line.split(":", 1)[1].strip()
        for line in wheel_text.splitlines()
        if line.lower().startswith("tag:")
    ]
    if not tags:
        raise _NotRepackable("no Tag in WHEEL")
    parts = [t.split("-") for t in tags]
    if any(len(p) != 3 for p in parts):
        raise _NotRepackable(f"odd tags {tags}")
    return "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))


def _wheel_file_for(dist: metadata.Distribution) -> str:
    """A ``WHEEL`` file for a distribution installed without one (conda installs many that
    way): pure Python for any interpreter, or built for this one and this machine."""
    import platform
    import sysconfig

    compiled = any(str(f).endswith((".so", ".pyd")) for f in dist.files or [])
    if compiled:
        python = f"cp{sys.version_info.major}{sys.version_info.minor}"
        machine = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        tag = f"{python}-{python}-{machine or platform.machine()}"
    else:
        tag = "py3-none-any"
    return (
        "Wheel-Version: 1.0\nGenerator: azhpc.node_image\n"
        f"Root-Is-Purelib: {'false' if compiled else 'true'}\nTag: {tag}\n"
    )


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def repack_distribution(dist: metadata.Distribution, folder: Path) -> Path:
    """Write a wheel of an installed distribution into ``folder``, from the files its
    ``RECORD`` lists (a PEP 427 wheel: those files, its ``.dist-info`` without the
    installation's own records, a new ``RECORD``). Files installed outside site-packages go
    to the wheel's ``.data`` folders; console scripts are left to the installer, which writes
    them from ``entry_points.txt``.

    Parameters
    ----------
    dist
        An installed distribution (from a wheel).
    folder
        Where the wheel is written.

    Returns
    -------
    Path
        The wheel.
    """
    if dist.files is None:
        raise _NotRepackable(str(dist))
    wheel_text = dist.read_text("WHEEL") or _wheel_file_for(dist)
    name = dist.metadata["Name"]
    distribution = name.replace("-", "_").replace(".", "_")
    wheel_name = f"{distribution}-{dist.version}-{_wheel_tags(wheel_text)}.whl"
    data_folder = f"{distribution}-{dist.version}.data"
    site = Path(str(dist.locate_file(""))).resolve()
    prefix = Path(sys.prefix).resolve()
    entries: list[tuple[str, bytes]] = []
    dist_info: str | None = None
    for file in dist.files:
        path = Path(str(dist.locate_file(file))).resolve()
        parts = Path(str(file)).parts
        if parts and parts[0].endswith(".dist-info"):
            dist_info = parts[0]
            if len(parts) == 2 and parts[1] in _INSTALL_RECORDS:
                continue
        if "__pycache__" in parts or not path.is_file():
            continue
        try:
            archive_name = path.relative_to(site).as_posix()
        except ValueError:
            try:
                outside = path.relative_to(prefix)
            except ValueError:
                continue  # somewhere this interpreter does not own: not part of a wheel
            if outside.parts[0] == "bin":
                continue  # console scripts: the installer writes them from entry_points.txt
            archive_name = f"{data_folder}/data/{outside.as_posix()}"
        entries.append((archive_name, path.read_bytes()))
    if dist_info is None:
        raise _NotRepackable(f"{name}: no .dist-info")
    if not any(n == f"{dist_info}/WHEEL" for n, _ in entries):
        entries.append((f"{dist_info}/WHEEL", wheel_text.encode()))
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    target = folder / wheel_name
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for archive_name, data in entries:
            info = zipfile.ZipInfo(archive_name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return target


# --- the image's tools ------------------------------------------------------------------------

_CURL = """#!/bin/bash
# The emulated node's curl: a Batch node reaches the internet, an emulated one only this.
url=""
for arg in "$@"; do case "$arg" in http://*|https://*) url="$arg";; esac; done
if [ "$url" = {installer} ]; then
  exec cat {installer_file}
fi
host="${{url#*://}}"; host="${{host%%/*}}"
echo "curl: (6) Could not resolve host: ${{host:-?}} (an emulated Batch node has no internet;" \\
  "it reaches only its package index, a folder of wheels: $UV_FIND_LINKS)" >&2
exit 6
"""

#: What the stand-in ``curl`` serves for :data:`UV_INSTALLER_URL`: it puts this machine's uv
#: where astral.sh's installer would (``$UV_INSTALL_DIR``).
_UV_INSTALLER = """#!/bin/sh
# uv's installer, as the Batch emulator serves it to its nodes: this machine's uv binary.
set -e
dir="${{UV_INSTALL_DIR:-$HOME/.local/bin}}"
mkdir -p "$dir"
cp {uv} "$dir/uv"
echo "installing to $dir"
"""

_NO_UV = """#!/bin/sh
echo "uv is not installed on the machine that runs the Batch emulator: pip install uv" >&2
exit 1
"""

_APT_GET = """#!/bin/bash
# The emulated node's apt-get: a node of the emulator is this machine, whose packages it
# cannot change; it has what this machine has installed, nothing else.
command=""; packages=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-c|-t) shift 2;;
    -*) shift;;
    *) if [ -z "$command" ]; then command="$1"; else packages+=("$1"); fi; shift;;
  esac
done
case "$command" in
  update) exit 0;;
  install)
    missing=0
    for p in "${packages[@]}"; do
      status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
      if [ "$status" != "install ok installed" ]; then
        echo "E: Unable to locate package $p (emulated nodes have only what this machine has" \\
          "installed: apt-get install $p here)" >&2
        missing=1
      fi
    done
    [ "$missing" = 0 ] || exit 100
    exit 0;;
  *) echo "E: apt-get $command is not available on emulated nodes" >&2; exit 100;;
esac
"""


def _uv_binary() -> str | None:
    """This machine's uv: the ``uv`` Python package's binary, else ``uv`` on ``PATH``."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``path`` under a temporary name, then rename (nodes may be reading it)."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}"
    temporary.write_text(text)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _bin_folder(cache: Path) -> Path:
    """The image's ``bin`` folder: the base interpreter as ``python3``/``python3.X``, and the
    ``curl`` and ``apt-get`` stand-ins (rewritten each time: cheap, and follows moves of the
    interpreter or uv)."""
    import shlex

    folder = cache / "bin"
    folder.mkdir(exist_ok=True)
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    uv = _uv_binary()
    installer = folder.parent / "uv-installer.sh"
    scripts = {
        "curl": _CURL.format(
            installer=shlex.quote(UV_INSTALLER_URL), installer_file=shlex.quote(str(installer))
        ),
        "apt-get": _APT_GET,
        "../uv-installer.sh": _UV_INSTALLER.format(uv=shlex.quote(uv)) if uv else _NO_UV,
    }
    for name, text in scripts.items():
        _write_atomically(folder / name, text, mode=0o755)
    for name in ("python3", minor):
        link = folder / name
        temporary = folder / f".{name}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(base)
        os.replace(temporary, link)
    return folder
