"""Durable jobs staged on Azurite: attach() from another process, and no secret anywhere."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

import azhpc
from tests.lake.conftest import PROJECT, fresh_container


def test_emulated_session_keeps_its_jobs_in_the_lake(azurite):
    with azhpc.connect("emulated", workers=2, progress=False) as session:
        assert session.store is not None  # durable by default on emulated
        job = session.submit_map(lambda x: x + 100, range(6), chunksize=2)
        assert job.result(timeout=120) == [x + 100 for x in range(6)]
        stored = session.lake.ls(f"/.azhpc/jobs/{job.job_id}/outcomes")
        assert sorted(p.rsplit("/", 1)[-1] for p in stored) == [
            "task-00000",
            "task-00001",
            "task-00002",
        ]
        assert session.lake.exists(f"/.azhpc/jobs/{job.job_id}/manifest.json")


CLIENT = """
import sys
from pathlib import Path
import azhpc

connection, container, counts = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def work(x):
    with open(counts / str(x), "a") as f:   # count every execution of every item
        f.write(".")
    return {{"item": x, "square": x * x}}

session = azhpc.connect(
    "azure", connection_string=connection, container=container, backend="local",
    workers=2, progress=False,
)
with session:
{body}
"""


def run_client(tmp_path, azurite, container, body):
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT).format(body=textwrap.indent(body, "    ")))
    done = subprocess.run(
        [sys.executable, str(script), azurite.connection_string, container, str(tmp_path / "n")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(PROJECT),
        env={**os.environ, "AZHPC_KEY_DIR": str(tmp_path / "keys")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_attach_from_a_second_process_on_azurite_reruns_nothing(tmp_path, azurite):
    container = fresh_container()
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    (tmp_path / "n").mkdir()
    first = run_client(
        tmp_path,
        azurite,
        container,
        "job = session.submit_map(work, range(10), chunksize=1)\n"
        "print(job.job_id)\nprint(job.result())",
    )
    job_id, result = first
    runs = {p.name: p.read_text() for p in (tmp_path / "n").iterdir()}
    assert runs == {str(x): "." for x in range(10)}

    second = run_client(
        tmp_path,
        azurite,
        container,
        f"job = azhpc.attach({job_id!r})\nprint(job.job_id)\nprint(job.result())\n"
        "print(job.progress.succeeded, job.progress.total)",
    )
    assert second == [job_id, result, "10 10"]
    again = {p.name: p.read_text() for p in (tmp_path / "n").iterdir()}
    assert again == runs, "attach() ran tasks that had already finished"


def test_no_key_or_sas_signature_in_reprs_widgets_logs_or_errors(azurite, caplog, capsys):
    from azhpc.notebook.widgets import JobWidget

    key = azurite.connection_string.split("AccountKey=", 1)[1].split(";", 1)[0]
    signature = "sig=c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ%3D%3D"
    secrets = [key, signature.split("=", 1)[1]]
    container = fresh_container()
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with azhpc.connect("emulated", workers=1, progress=False, container=container) as session:
            ok = session.submit_map(lambda x: x, [1, 2])
            ok.result(timeout=120)

            def leak(_):
                raise RuntimeError("task failed")

            failing = session.submit(leak, None)
            with pytest.raises(azhpc.TaskError) as failed:
                failing.result(timeout=120)
            widget = JobWidget(failing)
            widget.refresh()
            for part in (widget.box, widget.bar, widget.counts, widget.timing, widget.failure):
                seen.append(json.dumps(part.get_state(), default=str))
            seen += [
                repr(session),
                repr(session.lake),
                repr(session.store),
                repr(session.settings),
                repr(ok),
                str(failed.value),
                repr(session.lake.storage_options()),
            ]
            with pytest.raises(azhpc.AzhpcError) as missing:
                azhpc.attach("azhpc-19990101-000000-000000")
            seen.append(str(missing.value))
        # A session with a SAS token, refused: its error must not show the signature either.
        with pytest.raises(azhpc.AzhpcError) as refused:
            azhpc.connect(
                "azure",
                backend="local",
                workers=1,
                connection_string=(
                    f"BlobEndpoint={azurite.blob_endpoint};"
                    f"SharedAccessSignature=sv=2024-01-01&sp=r&{signature}"
                ),
                container=container,
            )
        seen.append(str(refused.value))
    seen += [record.getMessage() for record in caplog.records]
    out = capsys.readouterr()
    seen += [out.out, out.err]
    text = "\n".join(seen)
    assert text  # the scan saw something
    for secret in secrets:
        assert secret not in text
