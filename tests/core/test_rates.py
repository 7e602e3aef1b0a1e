"""The one parser of rate settings (AUTH_FAILURE_RATE and kin), and the settings' start-up check
that uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentdeck.core.rates import parse_rate

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("20/min", (20, 60.0)),
        ("100/hour", (100, 3600.0)),
        ("5/15min", (5, 900.0)),
        ("1/s", (1, 1.0)),
    ],
)
def test_a_rate_is_a_count_per_period(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["often", "20", "0/min", "5/0min", "-1/min", "20/week", ""])
def test_what_is_not_a_rate_is_refused(rate):
    # "5/0min" would be a period of zero seconds: no limit at all, silently.
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(rate)


def test_the_settings_refuse_a_bad_rate_at_start_up_with_its_name():
    env = {
        **os.environ,
        "AUTH_FAILURE_KEY_RATE": "5/0min",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",  # settings only, no connection
    }
    done = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "AUTH_FAILURE_KEY_RATE must be a rate such as 20/min or 5/15min, not '5/0min'" in (
        done.stderr
    )
