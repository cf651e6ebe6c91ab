"""No account key, SAS signature or job key in anything a Batch session shows: reprs, widget
state, log records (DEBUG, every logger, the Azure SDKs' included), errors, printed output."""

from __future__ import annotations

import json
import logging
import re

import pytest

import azhpc
from tests.conftest import batch_available

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


def fails(x: int) -> int:
    raise RuntimeError(f"task {x} failed on purpose")


def test_batch_session_shows_no_secret(caplog, capsys):
    from azhpc.lake.sas import SasSigner
    from azhpc.notebook.widgets import JobWidget

    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    with azhpc.connect("emulated", workers=1, progress=True, progress_after=0) as session:
        account = session.backend.account
        secrets = {
            "batch key": account.key.reveal(),
            "storage key": session.lake.storage_options()["connection_string"]
            .split("AccountKey=")[1]
            .split(";")[0],
        }
        signer = SasSigner(session.lake)
        sample_sas = signer.blob_url("x", write=False)
        signature = re.search(r"sig=([^&]+)", sample_sas).group(1)
        with azhpc.Pool("secret-scan", "Standard_D2s_v5", nodes=1, session=session) as pool:
            job = pool.submit_map(lambda x: x + 1, range(3), chunksize=1)
            assert job.result(timeout=60) == [1, 2, 3]
            secrets["job key"] = session.store.keys.key(job.job_id).hex()
            with pytest.raises(azhpc.TaskError) as caught:
                pool.map(fails, [1], chunksize=1)
            shown += [str(caught.value), repr(caught.value)]
            for shown_job in (job, caught.value.job if hasattr(caught.value, "job") else job):
                widget = JobWidget(shown_job)
                widget.refresh()
                for part in (widget.box, widget.bar, widget.counts, widget.timing, widget.failure):
                    shown.append(json.dumps(part.get_state(), default=str))
            shown += [repr(o) for o in (pool, pool.backend, pool.batch_pool, job, account)]
        shown += [repr(o) for o in (session, session.lake, session.store, session.settings)]
        shown += [repr(signer), repr(session.lake.storage_options())]
        signer.close()
    out = capsys.readouterr()
    shown += [out.out, out.err, caplog.text]
    shown += [r.getMessage() for r in caplog.records]
    text = "\n".join(shown)
    assert "sig=" not in text.replace("sig=REDACTED", ""), "a SAS signature was shown"
    assert signature not in text
    for name, value in secrets.items():
        assert value not in text, f"the {name} was shown"
