"""joblib's own ``joblib/test/test_parallel.py`` (shipped in the installed joblib), run in place
on the "azhpc" backend.

A separate pytest process runs the installed file with ``tests/peers/joblib_azhpc_plugin.py``,
which registers the backend before the file is imported (so its lists of backends include
"azhpc") and keeps the tests parametrized with it: about 100, in about 20 s on 2 cores. The
documented differences (``docs/compatibility.md``) are strict expected failures there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import communicate_or_kill, wait_until

joblib = pytest.importorskip("joblib")

REPO = Path(__file__).parent.parent.parent
SUITE = Path(joblib.__file__).parent / "test" / "test_parallel.py"


def test_joblib_test_parallel_passes_on_the_azhpc_backend(tmp_path: Path) -> None:
    if not SUITE.is_file():
        pytest.skip(f"this joblib ({joblib.__version__}) ships no test/test_parallel.py")
    ini = tmp_path / "pytest.ini"  # none of azhpc's own pytest settings and plugins
    ini.write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    marker = tmp_path / "suite-tmp"  # the suite's processes carry it (TMPDIR)
    marker.mkdir()
    env = dict(os.environ)
    env["TMPDIR"] = str(marker)
    env["JOBLIB_TEMP_FOLDER"] = str(marker)  # its memmapping folders, not in /dev/shm
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ini),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.peers.joblib_azhpc_plugin",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            "--timeout",
            "120",
            "-q",
            "-rfEX",
            f"--junitxml={report}",
            str(SUITE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(tmp_path),
        env=env,
    )
    try:
        out, _ = communicate_or_kill(proc, 600)
    finally:
        # joblib's own tests leave loky's reusable workers and resource trackers (in sessions
        # of their own) to outlive the suite's interpreter, and some end without closing an
        # azhpc session: what is left of the suite goes with it, and its scratch folders are
        # reclaimed, as the next azhpc session on the machine would.
        from tests.leftovers import processes_left, wait_while

        def suite_processes() -> list[Any]:
            # marked by the suite's folder (not this process's other children: sessions of
            # other tests live on)
            return [p for p in processes_left(marker) if p.why != "child of the test process"]

        def kill(trackers: bool) -> None:
            for left in suite_processes():
                if trackers or "resource_tracker" not in left.command:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(left.pid, signal.SIGKILL)

        # the workers first: their resource trackers then clean up after them and exit
        kill(trackers=False)
        wait_while(lambda: bool(suite_processes()), timeout=10)
        kill(trackers=True)
        wait_until(lambda: not suite_processes(), timeout=30, what="the suite's processes")
        from azhpc.backends.local.scratch import reclaim_stale_folders

        reclaim_stale_folders()
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    print(f"joblib {joblib.__version__} test_parallel.py on azhpc: {counts}")
    assert counts["tests"] >= 90, f"too few tests ran on azhpc:\n{out[-3000:]}"
    assert proc.returncode == 0, out[-6000:]
