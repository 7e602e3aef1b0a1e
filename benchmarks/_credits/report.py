"""The report: settlements/s per configuration and side, the ratio, the CPU, the reconciliation."""

from __future__ import annotations

import argparse
import statistics

from _support import (
    median_or_none,
)

from .config import (
    RATIO_TARGET,
)
from .workers import Sample


def report(
    args: argparse.Namespace, samples: dict[str, dict[str, list[Sample]]], rec: dict
) -> bool:
    ok = True
    print(
        f"credit settlements (hold + settle): {args.settlements} per measurement, "
        f"{args.workers} workers ({args.mode} mode), median of {args.repeat}, "
        f"channel layer {args.channel_layer}"
    )
    header = (
        f"{'config':<10} {'side':<14} {'settlements/s':>13} {'vs baseline':>11} "
        f"{'worker CPU':>10} {'PG CPU':>7}  each repetition"
    )
    print(header)
    print(f"{'':<52}{'(ms per settlement)':>20}")
    print("-" * len(header))
    for config, by_side in samples.items():
        base = statistics.median(s.rate for s in by_side["baseline"])
        for side in args.sides:
            values = by_side[side]
            median = statistics.median(s.rate for s in values)
            ratio = median / base
            verdict = ""
            if side == "agentdeck":
                passed = ratio >= RATIO_TARGET
                ok &= passed
                verdict = f"  [{'PASS' if passed else 'FAIL'}: target >= {RATIO_TARGET:.0%}]"
            runs = " ".join(f"{s.rate:.0f}" for s in values)
            failed = sum(s.failed_publishes for s in values)
            if failed:
                runs += f" ({failed} credits.updated publishes failed)"
            shown = "" if side == "baseline" else f"{ratio:.1%}"
            client = statistics.median(s.client_ms for s in values)
            server = median_or_none([s.server_ms for s in values])
            server_text = "-" if server is None else f"{server:.2f}"
            print(
                f"{config:<10} {side:<14} {median:>13.0f} {shown:>11} {client:>10.2f} "
                f"{server_text:>7}  {runs}{verdict}"
            )
    clean = not rec["discrepancies"] and not rec["reserved_nonzero"] and not rec["open_holds"]
    ok &= clean
    print(
        f"reconciliation: {len(rec['discrepancies'])} discrepancies over {rec['accounts']} "
        f"accounts; {rec['reserved_nonzero']} accounts with reserved != 0; "
        f"{rec['open_holds']} open holds  [{'PASS' if clean else 'FAIL'}]"
    )
    for d in rec["discrepancies"][:10]:
        print(f"  {d}")
    return ok
