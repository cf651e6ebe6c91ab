"""The emulated nodes' image: an offline package index of wheels repacked from this
interpreter's distributions, which uv installs like wheels from PyPI."""

from __future__ import annotations

import subprocess
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from azhpc.emulator.batch.node_image import node_image, repack_distribution


def test_a_repacked_distribution_installs_and_imports_offline(tmp_path: Path) -> None:
    dist = metadata.distribution("cloudpickle")
    wheel = repack_distribution(dist, tmp_path)
    assert wheel.name.startswith(f"cloudpickle-{dist.version}-") and wheel.suffix == ".whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    assert "cloudpickle/__init__.py" in names
    assert not any(n.endswith(("/INSTALLER", "/direct_url.json")) for n in names)
    assert all(line.split(",")[0] in names for line in record.splitlines())

    image = node_image(tmp_path / "nodes")
    env = image.environment(tmp_path)
    env["UV_FIND_LINKS"] = str(tmp_path)  # only this one wheel as the index
    venv = tmp_path / "venv"
    if image.uv is None:
        pytest.skip("uv is not installed (./dev test installs it with the azure extra)")
    uv = image.uv
    run = subprocess.run(
        [
            "bash",
            "-c",
            f"{uv} venv --no-config -q {venv} && "
            f"{uv} pip install --no-config --no-index --find-links {tmp_path} -q "
            f"--python {venv}/bin/python cloudpickle=={dist.version} && "
            f"{venv}/bin/python -c 'import cloudpickle; print(cloudpickle.__file__)'",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(venv))


def test_the_index_has_no_azhpc_and_the_pinned_packages(tmp_path: Path) -> None:
    image = node_image(tmp_path)
    names = {p.name.split("-")[0].lower() for p in image.index.glob("*.whl")}
    assert "azhpc" not in names  # nodes get it from the client's wheel, never an index
    for needed in ("cloudpickle", "numpy", "pandas", "pyarrow", "pip"):
        assert needed in names
