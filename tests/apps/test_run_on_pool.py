"""run_on_pool: a command on every node, and an mpi4py program as one multi-instance task, on
the Batch emulator through the real SDK (Open MPI's mpirun starts the ranks)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

import azhpc
from tests.conftest import batch_available

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)
needs_mpi = pytest.mark.skipif(
    shutil.which("mpirun") is None, reason="needs Open MPI's mpirun (./dev test installs it)"
)


def test_a_command_on_every_node_of_a_3_node_pool(batch_session, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "greet.sh").write_text('echo "hello from $AZ_BATCH_NODE_ID $(cat data.txt)"\n')
    (app / "data.txt").write_text("with data\n")
    with azhpc.Pool("every", "Standard_D2s_v5", nodes=3, task_slots_per_node=2,
                    session=batch_session) as pool:  # fmt: skip
        runs = azhpc.run_on_pool("bash greet.sh", pool=pool, files=app).result(timeout=120)
        nodes = sorted(pool.nodes())
    assert [r.node for r in runs] == nodes and len(set(nodes)) == 3
    for run in runs:
        assert run.exit_code == 0
        assert run.stdout == f"hello from {run.node} with data\n"


def test_a_failing_command_names_its_node_and_stderr(batch_session) -> None:
    with azhpc.Pool("failing", "Standard_D2s_v5", nodes=1, session=batch_session) as pool:
        job = azhpc.run_on_pool("echo broken pipe dream >&2; exit 3", pool=pool)
        with pytest.raises(azhpc.TaskError) as caught:
            job.result(timeout=60)
    message = str(caught.value)
    assert "exited with code 3 on node tvmps_" in message and "broken pipe dream" in message


MONTE_CARLO = textwrap.dedent(
    """
    import json, os
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(1000 + comm.rank)
    xy = rng.random((200_000, 2))
    hits = comm.reduce(int(((xy ** 2).sum(axis=1) <= 1.0).sum()), op=MPI.SUM, root=0)
    seen = {k: os.environ.get(k) for k in
            ("AZ_BATCH_HOST_LIST", "AZ_BATCH_MASTER_NODE", "AZ_BATCH_TASK_SHARED_DIR", "USER")}
    # The host this rank was started on: sshd's SSH_CONNECTION names it (client, port, server,
    # port); a rank started without ssh (on mpirun's own node) is on the first host.
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    seen["host"] = ssh[2] if ssh else seen["AZ_BATCH_HOST_LIST"].split(",")[0]
    everyone = comm.gather(seen, root=0)
    if comm.rank == 0:
        print(json.dumps({"size": comm.size, "hits": hits, "env": everyone}))
    """
)


@needs_mpi
def test_mpi4py_on_4_nodes_returns_the_right_answer(batch_session, tmp_path: Path) -> None:
    import json

    import numpy as np

    script = tmp_path / "pi.py"
    script.write_text(MONTE_CARLO)
    spec = azhpc.PoolSpec("mpi4", "Standard_HB120rs_v3", nodes=4, mpi=True,
                          inter_node_communication=True)  # fmt: skip
    with azhpc.Pool(spec, session=batch_session) as pool:
        run = azhpc.run_on_pool(script, pool=pool, mpi=True).result(timeout=180)
        client = batch_session.backend.account.client()
        addresses = {n.ip_address: n.id for n in client.list_nodes(pool.pool_id)}
    result = json.loads(run.stdout.strip().splitlines()[-1])
    expected = 0
    for rank in range(4):
        xy = np.random.default_rng(1000 + rank).random((200_000, 2))
        expected += int(((xy**2).sum(axis=1) <= 1.0).sum())
    assert result["size"] == 4 and result["hits"] == expected and run.ranks == 4
    hosts = result["env"][0]["AZ_BATCH_HOST_LIST"].split(",")
    assert sorted(hosts) == sorted(addresses) and len(set(hosts)) == 4  # a host per node
    assert addresses[hosts[0]] == run.node  # mpirun ran on the primary, the first host
    # Each rank on its own node, under the pool's azhpc account (inter-node SSH is Batch's
    # only for a pool user account with an SSH key).
    assert sorted(env["host"] for env in result["env"]) == sorted(hosts)
    for env in result["env"]:
        assert env["USER"] == "azhpc"
        assert env["AZ_BATCH_HOST_LIST"] == ",".join(hosts)
        assert env["AZ_BATCH_MASTER_NODE"].startswith(hosts[0] + ":")
        assert env["AZ_BATCH_TASK_SHARED_DIR"]


@needs_mpi
def test_a_failing_rank_fails_the_task_with_its_stderr(batch_session, tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text(
        "import sys\nfrom mpi4py import MPI\n"
        "if MPI.COMM_WORLD.rank == 2:\n"
        "    print('rank 2 cannot go on', file=sys.stderr)\n"
        "    sys.exit(7)\n"
    )
    spec = azhpc.PoolSpec("mpibad", "Standard_HB120rs_v3", nodes=3, mpi=True,
                          inter_node_communication=True)  # fmt: skip
    with azhpc.Pool(spec, session=batch_session) as pool:
        job = azhpc.run_on_pool(script, pool=pool, mpi=True)
        with pytest.raises(azhpc.TaskError) as caught:
            job.result(timeout=180)
    assert "rank 2 cannot go on" in str(caught.value)
    assert "3 MPI ranks" in str(caught.value)


def test_a_start_task_failing_on_one_node_is_named_with_its_reason(batch_session) -> None:
    emulator = batch_session.backend.account.emulator
    with azhpc.Pool("broken", "Standard_D2s_v5", nodes=3, session=batch_session) as pool:
        victim = sorted(pool.nodes())[1]
        emulator.fail_start_task(pool.pool_id, nodes=[victim])
        with pytest.raises(azhpc.pools.PoolStartError) as caught:
            azhpc.run_on_pool("hostname", pool=pool)
        message = str(caught.value)
        assert f"{victim} is starttaskfailed" in message
        assert "fault injected by the Batch emulator" in message  # the end of its stderr
        assert "only 2 are usable" in message and "nodes=N" in message
        # Asked for two nodes, it runs on the two usable ones.
        runs = azhpc.run_on_pool("hostname", pool=pool, nodes=2).result(timeout=60)
        assert victim not in [r.node for r in runs] and len(runs) == 2


def test_mpi_is_refused_before_any_task_on_pools_that_cannot_run_it(batch_session) -> None:
    from azhpc.pools import PoolSpecError

    counts = batch_session.backend.account.emulator
    with azhpc.Pool("no-ib", "Standard_D2s_v5", nodes=2, session=batch_session) as pool:
        counts.reset_request_counts()
        with pytest.raises(PoolSpecError, match="inter_node_communication"):
            azhpc.run_on_pool("hostname", pool=pool, mpi=True)
        assert "Task_AddCollection" not in counts.request_counts()
    with pytest.raises(PoolSpecError, match="spot"):
        azhpc.PoolSpec("spot-mpi", "Standard_H16r", spot_nodes=2, mpi=True,
                       inter_node_communication=True)  # fmt: skip
    with pytest.raises(azhpc.ConfigError, match="Batch pool"):
        azhpc.run_on_pool("hostname", pool=batch_session)


@needs_mpi
def test_the_node_view_shows_sub_tasks_and_stdout_tails_live(batch_session, tmp_path: Path):
    from azhpc.backends.batch.nodeview import NodeView, format_html, format_text
    from tests.conftest import wait_until

    gate = tmp_path / "gate"
    script = tmp_path / "wait.py"
    script.write_text(
        "import os, time\nfrom mpi4py import MPI\n"
        "print(f'rank {MPI.COMM_WORLD.rank} started', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n"
    )
    spec = azhpc.PoolSpec("view", "Standard_HB120rs_v3", nodes=3, mpi=True,
                          inter_node_communication=True)  # fmt: skip
    with azhpc.Pool(spec, session=batch_session) as pool:
        job = azhpc.run_on_pool(script, pool=pool, mpi=True, progress=False)
        view = NodeView(pool, job)
        rows: list = []

        def all_started() -> bool:
            rows[:] = view.snapshot()
            tails = "".join(row.stdout_tail for row in rows)
            return all("sub-task" in row.task for row in rows) and all(
                f"rank {r} started" in tails for r in range(3)
            )

        wait_until(all_started, timeout=60, what="three sub-tasks and rank output")
        gate.touch()
        job.result(timeout=60)
    assert sorted(row.task.rsplit(" ", 1)[-1] for row in rows) == ["0", "1", "2"]
    assert all(row.state == "running" and row.start_task.startswith("completed") for row in rows)
    primary = next(row for row in rows if row.task.endswith("sub-task 0"))
    # (mpirun forwards each rank's writes as they come: lines of ranks may interleave)
    assert all(f"rank {r} started" in primary.stdout_tail for r in range(3))
    text = "\n".join(format_text(rows))
    assert primary.node_id in text and "sub-task 0" in text
    assert "rank 0 started" in format_html(rows)


def test_a_pool_spec_gives_a_pool_for_the_run_which_is_deleted_after_it(batch_session) -> None:
    from azhpc.session import _make_default
    from tests.conftest import wait_until

    _make_default(batch_session)
    client = batch_session.backend.account.client()
    spec = azhpc.PoolSpec("for-the-run", "Standard_D2s_v5", nodes=2)
    job = azhpc.run_on_pool("echo $AZ_BATCH_POOL_ID", pool=spec, progress=False)
    runs = job.result(timeout=120)
    assert [r.stdout.strip() for r in runs] == ["for-the-run", "for-the-run"]
    wait_until(
        lambda: "for-the-run" not in [p.id for p in client.list_pools()],
        timeout=30,
        what="the run's pool deleted",
    )
    kept = azhpc.run_on_pool("true", pool=spec, keep=True, progress=False)
    kept.result(timeout=120)
    assert "for-the-run" in [p.id for p in client.list_pools()]
    azhpc.Pool("for-the-run", session=batch_session).delete()


def _tiny_wheel(folder: Path) -> Path:
    """A wheel of a one-module package (built by hand: no network, no build backend)."""
    import zipfile

    wheel = folder / "mini-0.1-py3-none-any.whl"
    info = "mini-0.1.dist-info"
    files = {
        "mini/__init__.py": "VALUE = 'installed from requirements.txt'\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: mini\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(name, text)
    return wheel


def test_requirements_are_installed_on_each_node_first(batch_session, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    wheel = _tiny_wheel(app)
    requirements = app / "requirements.txt"
    requirements.write_text(f"--no-index\n./{wheel.name}\n")
    with azhpc.Pool("reqs", "Standard_D2s_v5", nodes=2, session=batch_session) as pool:
        runs = azhpc.run_on_pool(
            "python -c 'import mini; print(mini.VALUE)'",
            pool=pool,
            files=app,
            requirements=requirements,
        ).result(timeout=120)
    assert [r.stdout for r in runs] == ["installed from requirements.txt\n"] * 2


def test_attach_keeps_the_tasks_pinned_to_their_nodes(batch_session, tmp_path: Path) -> None:
    from tests.conftest import wait_until

    gate = tmp_path / "gate"
    client = batch_session.backend.account.client()
    with azhpc.Pool("pinned", "Standard_D2s_v5", nodes=2, session=batch_session) as pool:
        job = azhpc.run_on_pool(
            f"while [ ! -e {gate} ]; do sleep 0.05; done; echo $AZ_BATCH_NODE_ID",
            pool=pool,
            progress=False,
        )
        wait_until(lambda: job.progress.running == 2, timeout=60, what="both tasks running")
        job.cancel()  # the Batch job ends; its tasks did not finish
        again = azhpc.attach(job.job_id, pool=pool)
        # Read the rerun's tasks while they wait: a finished job is deleted once gathered.
        rerun = f"{job.job_id}-r1"
        affinity = {t.id: t.affinity_info.affinity_id for t in client.list_tasks(rerun)}
        gate.touch()
        runs = again.result(timeout=120)
        assert [r.stdout.strip() for r in runs] == sorted(pool.nodes())
    assert affinity == {
        "task-00000": f"TVM:{runs[0].node}",
        "task-00001": f"TVM:{runs[1].node}",
    }


def test_a_terminal_gets_a_line_per_node_change_not_per_output_line(
    batch_session, tmp_path: Path, capsys
) -> None:
    from azhpc.backends.batch.nodeview import NodeView, _Watcher
    from tests.conftest import wait_until

    first, second = tmp_path / "first", tmp_path / "second"
    command = (
        f"echo one; while [ ! -e {first} ]; do sleep 0.05; done; "
        f"echo two; while [ ! -e {second} ]; do sleep 0.05; done"
    )
    with azhpc.Pool("lines", "Standard_D2s_v5", nodes=1, session=batch_session) as pool:
        job = azhpc.run_on_pool(command, pool=pool, progress=False)
        view = NodeView(pool, job)
        wait_until(lambda: "one" in view.snapshot()[0].stdout_tail, timeout=60, what="one")
        capsys.readouterr()
        watcher = _Watcher(view, None, interval=600)  # refreshed by hand below
        wait_until(lambda: watcher.last, timeout=30, what="the first refresh")
        first.touch()
        wait_until(lambda: "two" in view.snapshot()[0].stdout_tail, timeout=60, what="two")
        watcher._show()  # more output, same state and task: no new line
        second.touch()
        job.result(timeout=60)
        watcher._thread.join(timeout=30)  # the final refresh: the node is idle again
    lines = [line for line in capsys.readouterr().err.splitlines() if "tvmps_" in line]
    assert len(lines) == 2, lines
    assert " running " in lines[0] and "| one" in lines[0]
    assert " idle " in lines[1]


def test_mpi_is_refused_on_a_pool_listed_without_the_azhpc_account() -> None:
    from types import SimpleNamespace

    from azure.batch import models

    from azhpc.backends.batch.apps import _check_mpi_pool
    from azhpc.pools import PoolSpecError

    def pool_with(accounts: list | None) -> SimpleNamespace:
        service = models.BatchPool(
            {"id": "p", "enableInterNodeCommunication": True, "taskSlotsPerNode": 1}
        )
        service.user_accounts = accounts
        client = SimpleNamespace(get_pool=lambda pool_id: service)
        batch_pool = SimpleNamespace(
            _call=lambda what, call: call(),
            account=SimpleNamespace(client=lambda: client),
        )
        return SimpleNamespace(spec=None, pool_id="p", batch_pool=batch_pool)

    with pytest.raises(PoolSpecError, match="no 'azhpc' user account"):
        _check_mpi_pool(pool_with([models.UserAccount(name="someone", password="x")]))
    _check_mpi_pool(pool_with([models.UserAccount(name="azhpc", password="x")]))
    _check_mpi_pool(pool_with(None))  # not listed (the emulator keeps the accounts to itself)
