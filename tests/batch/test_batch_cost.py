"""Cost so far on a Batch pool: the pool's offline estimate per hour drives the displays."""

from __future__ import annotations

import html
import json

import pytest

import azhpc
from tests.conftest import batch_available

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


def test_pool_jobs_carry_the_pools_rate_into_the_widget(batch_session, monkeypatch):
    from azhpc.notebook import widgets

    monkeypatch.setattr(widgets, "display", lambda *_: None)
    with azhpc.Pool(
        "cost-pool", "Standard_D4s_v5", nodes=1, spot_nodes=1, session=batch_session
    ) as pool:
        estimate = pool.estimate()
        job = pool.submit_map(abs, [-1, -2, -3], chunksize=1)
        assert job.result(timeout=60) == [1, 2, 3]
        p = job.progress
        assert p.cost_per_hour == pytest.approx(estimate.per_hour)
        assert p.currency == estimate.currency
        assert p.cost == pytest.approx(estimate.per_hour * p.elapsed / 3600)
        view = widgets.JobWidget(job)
        timing = html.unescape(json.dumps(view.timing.get_state(), ensure_ascii=False))
        assert f"{estimate.per_hour:.2f} {estimate.currency}/h" in timing

        # The same pool opened by id: the rate comes from what the service reports.
        with azhpc.Pool("cost-pool", session=batch_session) as by_id:
            assert by_id.estimate().per_hour == pytest.approx(estimate.per_hour)
            again = by_id.submit_map(abs, [-4], chunksize=1)
            assert again.result(timeout=60) == [4]
            assert again.progress.cost_per_hour == pytest.approx(estimate.per_hour)
