"""The scenarios' names, defaults and targets (issue #15), and the N and model latency of each."""

from __future__ import annotations

import argparse

AGENT_NAME = "bench-concurrency"
SCENARIOS = ("latency", "cpu", "create", "start")
# Per scenario: N (runs or creations) and the model's latency in seconds, unless given.
DEFAULT_RUNS = {"latency": 500, "cpu": 300}
DEFAULT_LATENCY = {"latency": 1.0, "cpu": 0.0, "create": 0.0, "start": 0.0}
# The targets (issue #15, deliverable 6).
WALL_RATIO_MAX = 1.25
IN_FLIGHT_MIN = 400  # with N=500; 0.8 N for a smaller N
WORKER_RSS_MAX_MB = 400
CPU_RATIO_MAX = 2.0
CREATE_P50_MAX_MS = 100
START_P50_MAX_MS = 50
CHECK_CONCURRENCY = 16  # readers of the runs' event logs after a burst


def scenario_n(args: argparse.Namespace, scenario: str) -> int:
    if scenario == "create":
        return args.creates
    if scenario == "start":
        return args.start_runs
    return args.runs or DEFAULT_RUNS[scenario]


def scenario_latency(args: argparse.Namespace, scenario: str) -> float:
    return DEFAULT_LATENCY[scenario] if args.latency is None else args.latency
