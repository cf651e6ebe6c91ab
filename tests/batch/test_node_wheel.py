"""The client's azhpc wheel for Batch nodes: built offline and deterministically, installable,
staged once in the lake, and what the start task of a real account's pool installs."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import urllib.request
import venv
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc.backends.batch.node_wheel import WheelStager, build_wheel, client_pins
from azhpc.backends.batch.pool_body import start_task_script, to_batch_pool
from azhpc.pools import PoolSpec
from azhpc.version import PACKAGE_FOLDER, __version__
from tests.conftest import batch_available

RESOURCE = {
    "httpUrl": "https://lake.blob.core.windows.net/c/.azhpc/wheels/w.whl?sig=x",
    "filePath": "azhpc-0.1.0+0123456789ab-py3-none-any.whl",
}


def decoded_script(body: dict) -> str:
    command = body["startTask"]["commandLine"]
    return base64.b64decode(command.split("echo ", 1)[1].split(" ", 1)[0]).decode()


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the running azhpc package (with a stray __pycache__)."""
    copy = tmp_path / "src" / "azhpc"
    shutil.copytree(PACKAGE_FOLDER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "version.cpython-311.pyc").write_bytes(b"stale")
    return copy


def test_build_wheel_is_deterministic_and_named_by_content(package: Path) -> None:
    first, second = build_wheel(str(package)), build_wheel(str(package))
    assert first.data == second.data and first.file_name == second.file_name
    assert first.file_name.startswith(f"azhpc-{__version__}+")
    assert first.file_name.endswith("-py3-none-any.whl")

    (package / "version.py").write_text(
        (package / "version.py").read_text() + "# changed\n", encoding="utf-8"
    )
    changed = build_wheel(str(package))
    assert changed.file_name != first.file_name and changed.data != first.data


def test_build_wheel_is_a_standard_wheel(package: Path) -> None:
    wheel = build_wheel(str(package), requires=["cloudpickle>=3.0"])
    version = wheel.file_name.split("-")[1]
    dist_info = f"azhpc-{version}.dist-info"
    with zipfile.ZipFile(__import__("io").BytesIO(wheel.data)) as archive:
        names = archive.namelist()
        assert names[-1] == f"{dist_info}/RECORD"
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert "azhpc/__init__.py" in names and "azhpc/backends/batch/node_wheel.py" in names
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        meta = archive.read(f"{dist_info}/METADATA").decode()
        assert f"Version: {version}\n" in meta and "Requires-Dist: cloudpickle>=3.0\n" in meta
        assert b"Tag: py3-none-any" in archive.read(f"{dist_info}/WHEEL")
        assert b"azhpc = azhpc.cli:main" in archive.read(f"{dist_info}/entry_points.txt")
        record = archive.read(f"{dist_info}/RECORD").decode().splitlines()
        assert len(record) == len(names)
        for line in record[:-1]:
            name, digest, size = line.rsplit(",", 2)
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data)
        assert record[-1] == f"{dist_info}/RECORD,,"


@pytest.mark.timeout(300)
def test_built_wheel_installs_offline_and_imports(package: Path, tmp_path: Path) -> None:
    wheel = build_wheel(str(package))
    path = tmp_path / wheel.file_name
    path.write_bytes(wheel.data)
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(path)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    shown = subprocess.run(
        [python, "-c", "import azhpc; print(azhpc.__version__)"],
        check=True,
        cwd=tmp_path,  # not the checkout: the installed copy is imported
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert shown.stdout.strip() == __version__
    assert (env / "bin" / "azhpc").exists()  # the console script of entry_points.txt


class CountingFs:
    """A lake filesystem (fsspec memory) that counts uploads."""

    def __init__(self) -> None:
        import fsspec

        self.fs = fsspec.filesystem("memory", skip_instance_cache=True)
        self.writes: list[str] = []

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.fs.makedirs(path, exist_ok=exist_ok)

    def pipe_file(self, path: str, data: bytes) -> None:
        self.writes.append(path)
        self.fs.pipe_file(path, data)


class FakeSigner:
    def blob_url(self, blob: str, *, write: bool = False) -> str:
        assert not write
        return f"https://lake.blob.core.windows.net/c/{blob}?sig=read"


def test_wheel_is_staged_in_the_lake_once(package: Path) -> None:
    fs = CountingFs()
    first = WheelStager(fs, FakeSigner(), root="/.azhpc", folder=str(package))  # type: ignore[arg-type]
    resource = first.resource_file()
    assert first.resource_file() == resource  # built and checked once per stager
    second = WheelStager(fs, FakeSigner(), root="/.azhpc", folder=str(package))  # type: ignore[arg-type]
    assert second.resource_file() == resource  # another pool, another client: the same blob
    wheel = build_wheel(str(package))
    path = f"/.azhpc/wheels/{wheel.file_name}"
    assert fs.writes == [path]
    assert fs.fs.cat_file(path) == wheel.data
    assert resource == {
        "httpUrl": f"https://lake.blob.core.windows.net/c/.azhpc/wheels/{wheel.file_name}?sig=read",
        "filePath": wheel.file_name,
    }


def test_client_pins_are_the_client_versions() -> None:
    pins = client_pins()
    for name in ("cloudpickle", "numpy", "pandas", "pyarrow"):
        assert f"{name}=={metadata.version(name)}" in pins


def test_azure_start_task_installs_the_wheel_not_azhpc_from_the_index() -> None:
    spec = PoolSpec("p", "Standard_D2s_v5", nodes=1, requirements=["scikit-learn"])
    body = to_batch_pool(spec, wheel=RESOURCE)
    script = decoded_script(body)
    assert "azhpc==" not in script
    install = next(line for line in script.splitlines() if " pip install " in line)
    assert f"./{RESOURCE['filePath']}" in install
    for pin in client_pins():
        assert pin in install
    assert "scikit-learn" in install  # the user's requirements still come from the index
    assert start_task_script(spec, wheel_file=RESOURCE["filePath"]) == script


def test_azure_pool_body_has_the_wheel_as_a_start_task_resource_file() -> None:
    models = pytest.importorskip("azure.batch.models")
    pytest.importorskip("jsonschema")
    from tests.contract.batch_rest import Contract

    body = to_batch_pool(PoolSpec("p", "Standard_D2s_v5", nodes=1), wheel=RESOURCE)
    assert body["startTask"]["resourceFiles"] == [RESOURCE]
    assert Contract().validate("request", "BatchPoolCreateOptions", body) == []
    sdk = models.BatchPoolCreateOptions(body).start_task.resource_files[0]
    assert (sdk.http_url, sdk.file_path) == (RESOURCE["httpUrl"], RESOURCE["filePath"])


def test_start_task_script_has_no_emulator_variant() -> None:
    """Emulated nodes run what Azure's run (tests/batch/test_clean_nodes.py): there is no
    other way for a node to get azhpc than the wheel (or, wrongly, the package index)."""
    import inspect

    parameters = inspect.signature(start_task_script).parameters
    assert set(parameters) == {"spec", "azhpc_requirement", "wheel_file", "wheel_sha256"}


@pytest.fixture(scope="module")
def emulated() -> Any:
    if not batch_available():
        pytest.skip("needs azure-batch and Azurite (./dev test installs both)")
    with azhpc.connect("emulated", workers=1, progress=False) as session:
        yield session


def test_pool_of_a_real_account_stages_the_wheel_once_and_nodes_download_it(emulated) -> None:
    """An azure-style account on the emulator (``localhost``: an account is emulated when its
    URL is ``http://127.0.0.1...`` or it has an emulator attached): the pool body carries the
    wheel; Azurite serves it with the read SAS."""
    from azhpc.backends.batch.account import BatchAccount
    from azhpc.backends.batch.lifecycle import BatchPool
    from azhpc.config import Secret
    from azhpc.lake.sas import SasSigner

    emulator = emulated.backend.account.emulator
    url = emulator.url.replace("127.0.0.1", "localhost")
    account = BatchAccount(url, emulator.account_name, key=Secret(emulator.account_key))
    assert not account.emulated
    fs = emulated.lake.filesystem()
    signer = SasSigner(emulated.lake)
    uploads: list[str] = []
    pipe_file = fs.pipe_file

    def counting_pipe_file(path: str, data: bytes, **kwargs: Any) -> None:
        uploads.append(path)
        pipe_file(path, data, **kwargs)

    fs.pipe_file = counting_pipe_file  # type: ignore[method-assign]
    pools = []
    try:
        for pool_id in ("wheel-a", "wheel-b"):
            # No node: its start task would fetch uv from the internet.
            spec = PoolSpec(pool_id, "Standard_D2s_v5", autoscale="$TargetDedicatedNodes = 0;")
            pool = BatchPool(account, spec, show=False)
            pool.wheel_stager = WheelStager(fs, signer, root="/.azhpc")
            pool._create()
            pools.append(pool)
        wheels = [u for u in uploads if "/wheels/" in u]
        assert len(wheels) <= 1  # none if an earlier test run in this lake staged it
        client = account.client()
        wheel = build_wheel()
        for pool in pools:
            start = client.get_pool(pool.pool_id).start_task
            script = decoded_script({"startTask": {"commandLine": start.command_line}})
            assert "azhpc==" not in script  # azhpc is not on the package index
            assert f"./{wheel.file_name}" in script
            (resource,) = start.resource_files
            assert resource.file_path.startswith(f"azhpc-{__version__}+")
            with urllib.request.urlopen(resource.http_url) as response:
                assert response.read() == wheel.data
    finally:
        for pool in pools:
            pool.delete()
        signer.close()
