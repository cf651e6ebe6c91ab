"""Live tests: real pools on the Azure Batch account of an ``azure`` profile (``./dev test-live``).

Each test declares its largest pool and its time limit::

    @pytest.mark.live(vm_size="Standard_D2s_v5", nodes=2)
    @pytest.mark.timeout(1200, method="signal")
    def test_something(live: LiveRun) -> None:
        with azhpc.Pool(live.pool_id("tag"), "Standard_D2s_v5", nodes=2,
                        max_cost_per_hour=live.max_cost_per_hour, session=live.session) as pool:
            ...

Before the test: the profile is checked offline (``harness.live_settings``: skipped with the
reason otherwise), then the test's worst case is reserved from the cost cap
(``budget.CostCap``: skipped when it does not fit), then the session is opened (once per run).
Every pool id starts with the run's ``azhpc-live-<random>`` prefix; pools are created inside
``with azhpc.Pool(...)`` (deleted at the end of the block, Ctrl-C and timeouts included: the
``signal`` method of pytest-timeout raises in the test), and at the end of the run, Ctrl-C
included, a session finalizer deletes any pool with the prefix still in the account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import azhpc
from azhpc.config import Settings

from .budget import CostCap, WorstCase, worst_case
from .harness import delete_live_pools, live_config_file, live_settings, new_run_prefix

#: Node-state lines and progress go to the captured output (shown when a test fails, or
#: with ``-s``).
PROGRESS = True

#: The pools the session finalizer found and deleted, and the run's cost cap (for the summary).
_LEFT_OVER = pytest.StashKey[list[str]]()
_CAP = pytest.StashKey[CostCap]()


@dataclass
class LiveRun:
    """What a live test gets: the session, its pools' id prefix and cost guard.

    Attributes
    ----------
    session
        The session on the live profile (shared by the run).
    prefix
        The run's pool id prefix, ``azhpc-live-<random>``.
    worst
        The test's reserved worst case.
    """

    session: azhpc.Session
    prefix: str
    worst: WorstCase

    @property
    def max_cost_per_hour(self) -> float:
        """The hourly cost reserved for the test: pass it to ``azhpc.Pool`` / ``PoolSpec`` as
        ``max_cost_per_hour``, so that azhpc refuses a larger pool than the one declared."""
        assert self.worst.per_hour is not None  # a test without a price is skipped
        return self.worst.per_hour

    @property
    def node_timeout(self) -> float:
        """Seconds a pool may take to get usable nodes: half the test's time limit, so that
        azhpc's own PoolStartError, not the timeout, says what went wrong."""
        return self.worst.seconds / 2

    def pool_id(self, tag: str) -> str:
        """A pool id of this run: the prefix, ``-`` and a short tag (``[a-z0-9]``)."""
        return f"{self.prefix}-{tag}"


def _time_limit(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is None:
        return None
    value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    return float(value) if value is not None else None


def _worst_case(item: pytest.Item) -> WorstCase:
    declared = item.get_closest_marker("live")
    seconds = _time_limit(item)
    if declared is None or seconds is None:
        raise pytest.UsageError(
            f"live test {item.nodeid} must declare its largest pool and time limit: "
            "@pytest.mark.live(vm_size=..., nodes=...) and @pytest.mark.timeout(seconds, "
            "method='signal')"
        )
    return worst_case(seconds=seconds, **declared.kwargs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cheapest worst case first, so that a small cap runs as many tests as it can."""
    here = Path(__file__).parent
    live = [item for item in items if item.path.is_relative_to(here)]
    if not live:
        return
    costs = {item.nodeid: _worst_case(item).total for item in live}
    ordered = sorted(live, key=lambda item: (costs[item.nodeid] is None, costs[item.nodeid] or 0))
    first = items.index(live[0])
    rest = [item for item in items if item not in live]
    items[:] = rest[:first] + ordered + rest[first:]


@pytest.fixture(scope="session")
def live_settings_or_skip() -> Settings:
    """The live profile's settings (offline); every live test is skipped without them."""
    settings, reason = live_settings()
    if settings is None:
        pytest.skip(reason)
    return settings


@pytest.fixture(scope="session")
def cost_cap() -> CostCap:
    """The run's cost cap (``AZHPC_LIVE_MAX_EUR``)."""
    try:
        return CostCap.from_environment()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """``azhpc-live-<random>``: the prefix of every pool this run creates."""
    return new_run_prefix()


@pytest.fixture(scope="session")
def live_session(
    live_settings_or_skip: Settings, run_prefix: str, request: pytest.FixtureRequest
) -> Iterator[azhpc.Session]:
    """The session on the live profile; at its end (Ctrl-C included) the pools of this run
    still in the account are deleted."""
    settings = live_settings_or_skip
    saved = os.environ.get("AZHPC_CONFIG")
    os.environ["AZHPC_CONFIG"] = str(live_config_file())
    try:
        session = azhpc.connect(settings.name, progress=PROGRESS)
    finally:
        if saved is None:
            os.environ.pop("AZHPC_CONFIG", None)
        else:
            os.environ["AZHPC_CONFIG"] = saved
    account = session.backend.account
    left_over: list[str] = []
    request.config.stash[_LEFT_OVER] = left_over
    try:
        yield session
    finally:
        try:
            left_over += delete_live_pools(account, run_prefix)
        finally:
            session.close()


@pytest.fixture
def live(request: pytest.FixtureRequest, live_settings_or_skip: Settings, cost_cap: CostCap,
         run_prefix: str) -> LiveRun:  # fmt: skip
    """The profile checked, the test's worst case reserved from the cap, the session open."""
    if not request.config.pluginmanager.hasplugin("timeout"):
        pytest.skip(
            "pytest-timeout is not installed, so the live tests' time limits (and the cost cap "
            "built on them) would not hold: ./dev test-live installs it"
        )
    request.config.stash[_CAP] = cost_cap
    worst = _worst_case(request.node)
    reason = cost_cap.reserve(request.node.nodeid, worst)
    if reason is not None:
        pytest.skip(reason)
    session: azhpc.Session = request.getfixturevalue("live_session")
    return LiveRun(session=session, prefix=run_prefix, worst=worst)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    cap = config.stash.get(_CAP, None)
    if cap is None:
        return
    terminalreporter.write_line(cap.summary())
    left_over = config.stash.get(_LEFT_OVER, None)
    if left_over:
        terminalreporter.write_line(
            f"live tests left {len(left_over)} pool(s), deleted at the end of the run: "
            f"{', '.join(left_over)}"
        )
    elif left_over is not None:
        terminalreporter.write_line("live tests left no pool behind")
