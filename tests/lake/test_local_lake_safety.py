"""The local lake keeps what blob storage keeps by itself: whole files, and no way out.

- A write to the lake appears whole or not at all: a write that fails (here at a file size
  limit, ``RLIMIT_FSIZE``, which makes the kernel fail a write past it with ``EFBIG`` exactly
  as a full disk fails it with ``ENOSPC``, without root or a special file system) leaves
  neither a truncated file under the final name nor a temporary file.
- A symbolic link inside the lake folder cannot take a lake path out of it, for reading,
  writing or listing; links that stay inside keep working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from azhpc.config import resolve_settings
from azhpc.errors import LakePathError
from azhpc.lake import Lake

PROJECT = Path(__file__).resolve().parents[2]
LIMIT = 8 * 1024 * 1024


# -- atomic writes --------------------------------------------------------------------------


def write_under_a_size_limit(lake_root: Path, body: str) -> dict:
    """Run ``body`` (with ``lake``, ``fs`` and ``store`` at hand) in a child process whose
    writes fail past 8 MB; return what it prints as JSON (the error it met)."""
    source = textwrap.dedent(
        """
        import json, resource, sys
        from azhpc.config import resolve_settings
        from azhpc.lake import Lake
        from azhpc.staging import JobStore
        lake = Lake(resolve_settings("local", lake_root=sys.argv[1]))
        fs = lake.filesystem()
        store = JobStore(fs, "/.azhpc")
        fs.makedirs("/.azhpc/payloads", exist_ok=True)
        resource.setrlimit(resource.RLIMIT_FSIZE, (%d, resource.RLIM_INFINITY))
        try:
        %s
        except OSError as error:
            print(json.dumps({"error": type(error).__name__, "errno": error.errno}))
        else:
            print(json.dumps({"error": None}))
        """
    ) % (LIMIT, textwrap.indent(textwrap.dedent(body), "    "))
    done = subprocess.run(
        [sys.executable, "-c", source, str(lake_root)],
        capture_output=True, text=True, timeout=120, cwd=PROJECT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(20 * 1024 * 1024)  # 20 MB (sparse: cheap to make, full size to copy)
    return path


@pytest.mark.parametrize(
    "how",
    [
        "lake.put(sys.argv[2], '/raw/big.bin')",
        "lake.put(sys.argv[2], '/raw/big.bin', progress=False)",
        "fs.pipe_file('/raw/big.bin', open(sys.argv[2], 'rb').read())",
        "with lake.open('/raw/big.bin', 'wb') as f:\n    f.write(open(sys.argv[2], 'rb').read())",
        "f = fs.open('/raw/big.bin', 'wb')\nf.write(open(sys.argv[2], 'rb').read())",
    ],
    ids=["put", "put-quiet", "pipe_file", "open-with", "open-no-with"],
)
def test_local_lake_write_that_fails_leaves_no_file(tmp_path: Path, big_file: Path, how: str):
    lake_root = tmp_path / "lake"
    (lake_root / "raw").mkdir(parents=True)
    (lake_root / "raw" / "kept.txt").write_text("before")
    body = how.replace("sys.argv[2]", repr(str(big_file)))
    result = write_under_a_size_limit(lake_root, body)
    assert result["error"] is not None, "the write past the size limit did not fail"
    assert files_in(lake_root) == ["raw/kept.txt"], "a failed write left a file behind"


def test_local_lake_write_within_the_limit_is_whole(tmp_path: Path):
    lake_root = tmp_path / "lake"
    result = write_under_a_size_limit(
        lake_root,
        "fs.pipe_file('/raw/small.bin', b'x' * 1000)\n"
        "with lake.open('/raw/t.txt', 'w') as f:\n    f.write('text')",
    )
    assert result["error"] is None
    assert files_in(lake_root) == ["raw/small.bin", "raw/t.txt"]
    assert (lake_root / "raw" / "small.bin").read_bytes() == b"x" * 1000
    mode = (lake_root / "raw" / "t.txt").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # as a plain open() makes it, not 0600


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_local_lake_write_whose_with_block_raises_publishes_nothing(tmp_path: Path, mode: str):
    lake = Lake(resolve_settings("local", lake_root=str(tmp_path / "lake")))
    data = b"half" if "b" in mode else "half"
    with pytest.raises(RuntimeError, match="stopped"), lake.open("/raw/x.txt", mode) as f:
        f.write(data)
        raise RuntimeError("stopped half way")
    assert files_in(tmp_path / "lake") == []
    with lake.open("/raw/x.txt", mode) as f:
        f.write(data)
    assert files_in(tmp_path / "lake") == ["raw/x.txt"]
    assert (tmp_path / "lake" / "raw" / "x.txt").read_bytes() == b"half"


def _umask() -> int:
    value = os.umask(0o022)
    os.umask(value)
    return value


def test_durable_job_store_write_that_fails_leaves_no_partial_file(tmp_path: Path):
    lake_root = tmp_path / "lake"
    result = write_under_a_size_limit(
        lake_root,
        "from azhpc.core.payload import encode\n"
        "import numpy as np\n"
        "store.put_payload(encode(np.ones(2 * 1024 * 1024)))",  # 16 MB
    )
    assert result["error"] is not None
    assert files_in(lake_root) == [], "the job store left a .partial file behind"


def test_job_store_on_a_plain_filesystem_that_fails_leaves_no_partial_file(tmp_path: Path):
    # Not the lake's filesystem: fsspec's own local one, whose writes are not atomic.
    lake_root = tmp_path / "lake"
    result = write_under_a_size_limit(
        lake_root,
        "import fsspec\n"
        "from azhpc.core.payload import encode\n"
        "import numpy as np\n"
        "plain = JobStore(fsspec.filesystem('file'), sys.argv[1] + '/plain')\n"
        "plain.put_payload(encode(np.ones(2 * 1024 * 1024)))",  # 16 MB
    )
    assert result["error"] is not None
    assert files_in(lake_root) == [], "the job store left a .partial file behind"


FULL_DISK = """
import json, os, sys
import numpy as np
from azhpc.config import resolve_settings
from azhpc.core.payload import encode
from azhpc.lake import Lake
from azhpc.staging import JobStore

root, big = sys.argv[1], sys.argv[2]
lake = Lake(resolve_settings("local", lake_root=root))
store = JobStore(lake.filesystem(), "/.azhpc")
errors = []
for write in (
    lambda: lake.put(big, "/raw/big.bin"),
    lambda: store.put_payload(encode(np.ones(2 * 1024 * 1024))),  # 16 MB
):
    try:
        write()
    except OSError as error:
        errors.append(error.errno)
files = sorted(os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(root) for n in ns)
lake.filesystem().pipe_file("/raw/small.bin", b"x" * 1_000_000)  # the disk is not kept full
disk = os.statvfs(root)
print(json.dumps({"errors": errors, "files": files, "free": disk.f_bavail * disk.f_frsize}))
"""


def test_local_lake_on_a_full_disk_keeps_no_partial_file(tmp_path: Path, big_file: Path):
    """The real thing: a lake on an 8 MB tmpfs, mounted in a private mount namespace (root,
    or CAP_SYS_ADMIN, only: skipped elsewhere; the tests above need neither)."""
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and unshare(1); see the RLIMIT_FSIZE tests")
    probe = subprocess.run([unshare, "-m", "--propagation", "private", "true"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    lake_root = tmp_path / "small-disk"
    lake_root.mkdir()
    done = subprocess.run(
        [
            unshare, "-m", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=8m tmpfs "$1" || exit 99; shift; exec "$@"', "sh",
            str(lake_root), sys.executable, "-c", FULL_DISK, str(lake_root), str(big_file),
        ],
        capture_output=True, text=True, timeout=120, cwd=PROJECT,
    )  # fmt: skip
    if done.returncode == 99:
        pytest.skip(f"could not mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == [28, 28]  # ENOSPC, both
    assert result["files"] == [], "a failed write left a file on the full disk"
    assert result["free"] > 6 * 1024 * 1024


# -- symbolic links -------------------------------------------------------------------------


@pytest.fixture
def linked_lake(tmp_path: Path) -> Iterator[Lake]:
    """A lake with links out of it (``/escape`` a folder, ``/secret`` a file) and in it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not lake data")
    root = tmp_path / "lake"
    (root / "data").mkdir(parents=True)
    (root / "data" / "x.csv").write_text("a\n1\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret").symlink_to(outside / "secret.txt")
    (root / "inner").symlink_to(root / "data", target_is_directory=True)
    (root / "data" / "up").symlink_to("..", target_is_directory=True)  # to the root: inside
    lake = Lake(resolve_settings("local", lake_root=str(root)))
    yield lake
    lake.close()


def test_local_lake_refuses_reads_through_links_out_of_it(linked_lake: Lake, tmp_path: Path):
    fs = linked_lake.filesystem()
    with pytest.raises(LakePathError, match="symbolic link"):
        linked_lake.open("/escape/secret.txt").read()
    with pytest.raises(LakePathError, match="symbolic link"):
        fs.cat_file("/secret")
    with pytest.raises(LakePathError, match="symbolic link"):
        linked_lake.get("/secret", tmp_path / "copy.txt")
    with pytest.raises(LakePathError, match="symbolic link"):
        fs.local_path("/escape/secret.txt")
    with pytest.raises(LakePathError, match="symbolic link"):
        linked_lake.url("/escape/secret.txt")
    assert not (tmp_path / "copy.txt").exists()


def test_local_lake_refuses_writes_through_links_out_of_it(linked_lake: Lake, tmp_path: Path):
    fs = linked_lake.filesystem()
    local = tmp_path / "local.txt"
    local.write_text("new")
    attempts = [
        lambda: fs.pipe_file("/escape/new.txt", b"new"),
        lambda: linked_lake.open("/escape/new.txt", "wb"),
        lambda: linked_lake.put(local, "/escape/new.txt"),
        lambda: fs.pipe_file("/secret", b"overwritten"),
        lambda: linked_lake.rm("/escape/secret.txt"),
        lambda: fs.makedirs("/escape/folder", exist_ok=True),
        lambda: linked_lake.rename("/data/x.csv", "/escape/x.csv"),
    ]
    for attempt in attempts:
        with pytest.raises(LakePathError, match="leads out of the lake"):
            attempt()
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret.txt"]
    assert (tmp_path / "outside" / "secret.txt").read_text() == "not lake data"
    assert (tmp_path / "lake" / "data" / "x.csv").exists()


def test_local_lake_listings_leave_out_links_out_of_it(linked_lake: Lake):
    fs = linked_lake.filesystem()
    with pytest.raises(LakePathError, match="symbolic link"):
        linked_lake.ls("/escape")
    assert linked_lake.ls("/") == ["/data", "/inner"]
    found = fs.find("/", withdirs=True, maxdepth=3)
    assert "/data/x.csv" in found and "/inner" in found
    assert not any("secret" in path or "escape" in path for path in found)
    assert not any("secret" in path for path in fs.glob("/**"))


def test_local_lake_links_that_stay_inside_keep_working(linked_lake: Lake):
    fs = linked_lake.filesystem()
    assert linked_lake.open("/inner/x.csv", "rb").read() == b"a\n1\n"
    fs.pipe_file("/inner/y.csv", b"b\n2\n")
    assert linked_lake.open("/data/y.csv", "rb").read() == b"b\n2\n"
    assert fs.cat_file("/data/up/data/x.csv") == b"a\n1\n"
    assert sorted(linked_lake.ls("/inner")) == ["/inner/up", "/inner/x.csv", "/inner/y.csv"]
