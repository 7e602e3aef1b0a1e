"""Rates as the settings write them (``AUTH_FAILURE_RATE=20/min``): one parser, for the
settings' start-up check and for the counting in agentdeck.core.throttling.

The syntax is DRF's (``N/s``, ``N/min``, ``N/hour``, ``N/day``: only the unit's first letter
counts) plus a count of units (``5/15min``). No Django import: settings use it before apps load.
"""

from __future__ import annotations

import re

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, float]:
    """``"20/min"`` -> (20, 60.0), ``"5/15min"`` -> (5, 900.0); ValueError for anything else,
    a count of 0 or a period of 0 included."""
    match = _RATE.match(rate)
    if match is None or int(match[1]) < 1 or int(match[2] or 1) < 1:
        raise ValueError(f"not a rate: {rate!r} (e.g. 20/min, 100/hour, 5/15min)")
    return int(match[1]), float(int(match[2] or 1) * _UNIT_SECONDS[match[3]])
