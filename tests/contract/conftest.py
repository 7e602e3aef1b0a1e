from __future__ import annotations

import pytest

# What the Schemathesis run tried (operations, examples per operation, failures), written by
# tests/contract/test_schemathesis.py and printed at the end of the session, so the numbers
# are in the output of every run, passing or not, without -s.
SUMMARY = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("Schemathesis")
        for line in lines:
            terminalreporter.write_line(line)
