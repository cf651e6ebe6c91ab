"""The lake conformance suite: every lake implementation's test class inherits it.

A subclass provides a ``lake`` fixture (an empty :class:`azhpc.lake.Lake`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from azhpc.lake import Lake, LakePathError, Rename
from azhpc.lake.progress import TransferCounter


def write(lake: Lake, path: str, data: bytes) -> None:
    with lake.open(path, "wb") as f:
        f.write(data)


def read(lake: Lake, path: str) -> bytes:
    with lake.open(path, "rb") as f:
        return f.read()


class LakeConformance:
    """Behaviour every lake has, whatever stores it."""

    def test_lake_write_then_read_bytes(self, lake: Lake):
        write(lake, "/raw/hello.txt", b"hello lake")
        assert read(lake, "/raw/hello.txt") == b"hello lake"
        with lake.open("raw/hello.txt", "r", encoding="utf-8") as f:  # no leading slash: same
            assert f.read() == "hello lake"

    def test_lake_exists_and_rm(self, lake: Lake):
        write(lake, "/a/b.bin", b"x")
        assert lake.exists("/a/b.bin") and lake.exists("/a")
        assert not lake.exists("/a/c.bin")
        lake.rm("/a/b.bin")
        assert not lake.exists("/a/b.bin")

    def test_lake_ls_lists_nested_folders_as_lake_paths(self, lake: Lake):
        for name in ("/raw/2024/01/x.csv", "/raw/2024/02/y.csv", "/raw/top.csv"):
            write(lake, name, b"1")
        assert lake.ls("/raw") == ["/raw/2024", "/raw/top.csv"]
        assert lake.ls("/raw/2024/") == ["/raw/2024/01", "/raw/2024/02"]
        detail = lake.ls("/raw/2024/01", detail=True)
        assert [(e["name"], e["type"], e["size"]) for e in detail] == [
            ("/raw/2024/01/x.csv", "file", 1)
        ]
        lake.rm("/raw/2024", recursive=True)
        assert lake.ls("/raw") == ["/raw/top.csv"]

    def test_lake_csv_round_trip_through_pandas(self, lake: Lake):
        df = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"], "x": [0.5, 1.5, -2.0]})
        url, options = lake.url("/out/2024/frame.csv"), lake.storage_options()
        df.to_csv(url, storage_options=options, index=False)
        pd.testing.assert_frame_equal(pd.read_csv(url, storage_options=options), df)

    def test_lake_parquet_round_trip_through_pandas(self, lake: Lake):
        df = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.linspace(0, 1, 1000)})
        url, options = lake.url("/out/frame.parquet"), lake.storage_options()
        df.to_parquet(url, storage_options=options)
        pd.testing.assert_frame_equal(pd.read_parquet(url, storage_options=options), df)
        assert lake.ls("/out") == ["/out/frame.parquet"]

    def test_lake_large_file_transfer_reports_progress(self, lake: Lake, tmp_path: Path):
        size = 50 * 2**20
        source = tmp_path / "big.bin"
        block = os.urandom(2**20)
        with open(source, "wb") as f:
            for _ in range(50):
                f.write(block)
        up = lake.put(source, "/big/big.bin", progress=False)
        assert isinstance(up, TransferCounter)
        assert (up.files_total, up.files_done) == (1, 1)
        assert up.bytes_total == up.bytes_done == size
        assert up.finished is not None and up.seconds > 0
        back = tmp_path / "back.bin"
        down = lake.get("/big/big.bin", back, progress=False)
        assert down.bytes_total == down.bytes_done == size
        assert back.stat().st_size == size
        with open(back, "rb") as f:
            assert f.read(2**20) == block

    def test_lake_put_and_get_a_folder(self, lake: Lake, tmp_path: Path):
        folder = tmp_path / "data"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_bytes(b"aa")
        (folder / "sub" / "b.txt").write_bytes(b"bbb")
        counter = lake.put(folder, "/in/data", recursive=True)
        assert counter.bytes_done == 5, counter
        assert read(lake, "/in/data/sub/b.txt") == b"bbb"
        lake.get("/in/data", tmp_path / "copy", recursive=True)
        assert (tmp_path / "copy" / "sub" / "b.txt").read_bytes() == b"bbb"

    def test_lake_missing_file_raises_file_not_found(self, lake: Lake, tmp_path: Path):
        with pytest.raises(FileNotFoundError):
            read(lake, "/no/such.csv")
        with pytest.raises(FileNotFoundError):
            lake.get("/no/such.csv", tmp_path / "x")
        with pytest.raises(FileNotFoundError):
            lake.rm("/no/such.csv")
        with pytest.raises(FileNotFoundError):
            lake.ls("/no/such/folder")
        with pytest.raises(FileNotFoundError):
            pd.read_csv(lake.url("/no/such.csv"), storage_options=lake.storage_options())
        with pytest.raises(FileNotFoundError):
            lake.put(tmp_path / "not-here", "/x")

    def test_lake_rename_moves_a_folder(self, lake: Lake):
        write(lake, "/stage/job/part-0.bin", b"0")
        write(lake, "/stage/job/deep/part-1.bin", b"1")
        how = lake.rename("/stage/job", "/done/job")
        assert how in (Rename.ATOMIC, Rename.COPY_DELETE)
        assert not lake.exists("/stage/job")
        assert read(lake, "/done/job/deep/part-1.bin") == b"1"
        assert lake.ls("/done/job") == ["/done/job/deep", "/done/job/part-0.bin"]
        with pytest.raises(FileExistsError):
            write(lake, "/stage/other.bin", b"2")
            lake.rename("/stage/other.bin", "/done/job")
        with pytest.raises(FileNotFoundError):
            lake.rename("/stage/none", "/done/none")

    def test_lake_paths_cannot_escape_the_root(self, lake: Lake):
        for bad in ("/../secret.txt", "../x", "/raw/../../x"):
            with pytest.raises(LakePathError, match="escapes"):
                lake.url(bad)
            with pytest.raises(LakePathError):
                lake.open(bad, "wb")
        with pytest.raises(LakePathError, match="URL"):
            lake.exists("abfs://other/x")
        assert lake.url("/raw/../raw/./x.csv") == lake.url("/raw/x.csv")

    def test_lake_filesystem_is_fsspec_and_takes_lake_paths(self, lake: Lake):
        import fsspec

        fs = lake.filesystem()
        assert isinstance(fs, fsspec.AbstractFileSystem)
        assert fs is lake.filesystem()
        write(lake, "/fs/x.txt", b"via lake")
        assert fs.cat_file("/fs/x.txt") == b"via lake"
        assert fs.cat_file("fs/./x.txt") == b"via lake"  # no leading slash, dots: same file
        # pandas' filesystem from url()+storage_options() sees the same files
        opened, path = fsspec.core.url_to_fs(lake.url("/fs/x.txt"), **lake.storage_options())
        assert opened.cat_file(path) == b"via lake"

    def test_lake_filesystem_gives_back_lake_paths(self, lake: Lake):
        fs = lake.filesystem()
        fs.pipe_file("/raw/2024/01/x.csv", b"1")
        fs.pipe_file("/raw/top.csv", b"22")
        assert sorted(fs.ls("/raw", detail=False)) == ["/raw/2024", "/raw/top.csv"]
        assert sorted(e["name"] for e in fs.ls("/raw", detail=True)) == [
            "/raw/2024",
            "/raw/top.csv",
        ]
        assert fs.glob("/raw/*.csv") == ["/raw/top.csv"]
        assert fs.glob("/raw/*/*/*.csv") == ["/raw/2024/01/x.csv"]
        assert fs.find("/raw") == ["/raw/2024/01/x.csv", "/raw/top.csv"]
        assert sorted(fs.find("/raw", detail=True)) == ["/raw/2024/01/x.csv", "/raw/top.csv"]
        assert fs.info("/raw/top.csv")["name"] == "/raw/top.csv"
        assert fs.info("/raw/top.csv")["size"] == 2
        assert "/raw" in fs.ls("/", detail=False)
        fs.mv("/raw/top.csv", "/raw/moved.csv")
        assert fs.cat_file("/raw/moved.csv") == b"22" and not fs.exists("/raw/top.csv")

    def test_lake_filesystem_refuses_paths_out_of_the_root(self, lake: Lake):
        fs = lake.filesystem()
        for bad in ("/../secret.txt", "../x", "/raw/../../x"):
            with pytest.raises(LakePathError, match="escapes"):
                fs.cat_file(bad)
            with pytest.raises(LakePathError, match="escapes"):
                fs.open(bad, "wb")
            with pytest.raises(LakePathError, match="escapes"):
                fs.ls(bad)
            with pytest.raises(LakePathError, match="escapes"):
                fs.glob(bad + "/*")
            with pytest.raises(LakePathError, match="escapes"):
                fs.pipe({"/ok.txt": b"1", bad: b"2"})
        with pytest.raises(LakePathError, match="URL"):
            fs.exists("abfs://other/x")
        assert not fs.exists("/ok.txt")  # nothing of a refused batch was written

    def test_lake_job_store_keeps_payloads_at_lake_paths(self, lake: Lake, tmp_path: Path):
        from azhpc.core.payload import encode
        from azhpc.core.signing import KeyRing
        from azhpc.staging import JobStore

        store = JobStore(lake.filesystem(), "/.azhpc", keys=KeyRing(tmp_path / "keys"))
        digest = store.put_payload(encode([1, 2, 3]))
        assert lake.ls("/.azhpc/payloads") == [f"/.azhpc/payloads/{digest}"]
        assert store.load_payload(digest).digest() == digest
        assert store.job_ids() == []
