"""The pytest side of the Batch REST contract: installed session-wide by ``tests/conftest.py``.

Every exchange of every Batch emulator in the test process is checked (see
:mod:`tests.contract.batch_rest`). The terminal summary says how many requests and responses
were validated, and lists each violation once with the test that was running when it happened.

A violation fails the **session** (exit status 1, even when every test passed), rather than the
test that happened to be running: emulators are shared by module- and session-scoped fixtures
and polled by background threads, so a request is not always made by the test that is running
when it arrives. The test named beside each violation is the best lead, not a verdict.
"""

from __future__ import annotations

import pytest

from azhpc.emulator.batch.server import add_observer, remove_observer
from tests.contract.batch_rest import Contract, Recorder

__all__ = ["ContractPlugin"]


class ContractPlugin:
    """Checks every Batch emulator exchange; reports and fails the session on violations."""

    def __init__(self) -> None:
        self.recorder = Recorder(Contract())
        add_observer(self.recorder)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.recorder.current_test = nodeid

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.recorder.current_test = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.recorder.violations and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        recorder = self.recorder
        if recorder.violations:
            terminalreporter.section("Batch REST contract violations", red=True)
            for violation, count in recorder.grouped():
                times = f" (x{count})" if count > 1 else ""
                terminalreporter.write_line(
                    f"{violation.operation or '?'} {violation.method} {violation.path} "
                    f"-> {violation.status}: {violation.message}{times}\n"
                    f"    during {violation.test or 'no test (between tests)'}"
                )
        terminalreporter.write_line(recorder.summary(), red=bool(recorder.violations))

    def pytest_unconfigure(self) -> None:
        remove_observer(self.recorder)
