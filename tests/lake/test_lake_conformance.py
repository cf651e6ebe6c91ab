"""The conformance suite on a local folder and on Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from azhpc.config import resolve_settings
from azhpc.lake import Lake, LakePathError

from .conformance import LakeConformance
from .conftest import fresh_container


class TestLocalLake(LakeConformance):
    @pytest.fixture
    def lake(self, tmp_path: Path) -> Iterator[Lake]:
        lake = Lake(resolve_settings("local", lake_root=str(tmp_path / "lake")))
        yield lake
        lake.close()

    def test_local_url_is_the_file_path_under_the_root(self, lake: Lake, tmp_path: Path):
        root = (tmp_path / "lake").resolve()
        assert lake.url("/raw/x.csv") == str(root / "raw" / "x.csv")
        assert (root / "raw").is_dir()  # folders are implicit, as in blob storage
        assert lake.storage_options() == {}

    def test_local_filesystem_refuses_paths_out_of_the_root(self, lake: Lake, tmp_path: Path):
        (tmp_path / "outside.txt").write_text("secret")
        fs = lake.filesystem()
        with pytest.raises((LakePathError, ValueError)):
            fs.cat_file("/../outside.txt")
        with pytest.raises((LakePathError, ValueError)):
            fs.open("../../outside.txt", "rb")
        with fs.open("/inside.txt", "wb") as f:  # lake paths map under the root
            f.write(b"in")
        assert (tmp_path / "lake" / "inside.txt").read_bytes() == b"in"
        assert fs.local_path("/inside.txt") == str((tmp_path / "lake" / "inside.txt").resolve())
        assert fs.local_path("/") == str((tmp_path / "lake").resolve())
        with pytest.raises(LakePathError):
            fs.local_path("/../outside.txt")

    def test_local_job_store_commits_by_rename(self, lake: Lake):
        from azhpc.staging import JobStore

        assert JobStore(lake.filesystem(), "/.azhpc")._object_store is False


class TestAzuriteLake(LakeConformance):
    @pytest.fixture
    def lake(self, azurite) -> Iterator[Lake]:
        settings = resolve_settings("emulated", container=fresh_container())
        lake = Lake(settings, emulator=azurite, owns_emulator=False)
        lake.ensure_container()
        yield lake
        lake.close()
        assert azurite.running  # the lake does not own the shared emulator

    def test_azurite_url_is_abfs_in_the_container(self, lake: Lake):
        container = lake.settings.container
        assert lake.url("/raw/x.csv") == f"abfs://{container}/raw/x.csv"
        fs = lake.filesystem()
        assert type(fs.fs).__name__ == "AzureBlobFileSystem" and fs.path == container
        assert fs.local_path("/raw/x.csv") is None

    def test_azurite_job_store_sees_an_object_store_under_the_root(self, lake: Lake):
        from azhpc.staging import JobStore

        assert JobStore(lake.filesystem(), "/.azhpc")._object_store is True  # one upload each

    def test_azurite_filesystem_wraps_the_adlfs_instance_pandas_gets(self, lake: Lake):
        import fsspec

        opened, _ = fsspec.core.url_to_fs(lake.url("/x.csv"), **lake.storage_options())
        assert opened is lake.filesystem().fs  # fsspec's cached instance: one client, one loop
        lake.filesystem().pipe_file("/raw/x.csv", b"1")
        assert opened.cat_file(f"{lake.settings.container}/raw/x.csv") == b"1"
