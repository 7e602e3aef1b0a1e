"""Check that mypy's baseline (the ``ignore_errors = true`` override in pyproject.toml) only
shrinks: run by ``make lint`` after mypy itself.

mypy runs once more with the baseline's ``ignore_errors`` switched off (a temporary copy of the
config; the same cache, so only the baseline's modules are checked again) and this fails

- when a baseline entry has no errors left: take it off the list, so that it stays clean;
- when a module off the list has errors (mypy itself has failed for those already).

With no such override there is no baseline and nothing to check (mypy itself has passed every
module): this says so and passes.

Usage: python scripts/mypy_baseline.py  (from the repository root)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SWITCH = "ignore_errors = true"
# "agentdeck/core/queue.py:66: error: ..." (notes and the summary line do not match).
ERROR_LINE = re.compile(r"^(?P<path>[^:\s]+\.pyi?):\d+: error: ", re.MULTILINE)


def baseline(config: dict[str, Any]) -> list[str]:
    overrides = config["tool"]["mypy"].get("overrides", [])
    modules = [o["module"] for o in overrides if o.get("ignore_errors")]
    if not modules:
        return []
    if len(modules) != 1:
        sys.exit(f"mypy_baseline: expected one override with ignore_errors, found {len(modules)}")
    return [modules[0]] if isinstance(modules[0], str) else list(modules[0])


def module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def covers(pattern: str, module: str) -> bool:
    # mypy's override patterns: "a.b" is that module, "a.b.*" is a.b and everything under it.
    if pattern.endswith(".*"):
        package = pattern[:-2]
        return module == package or module.startswith(package + ".")
    return module == pattern


def main() -> int:
    text = (ROOT / "pyproject.toml").read_text()
    listed = baseline(tomllib.loads(text))
    if not listed and SWITCH not in text:
        print("mypy baseline: none (no override with ignore_errors); nothing to check")
        return 0
    if text.count(SWITCH) != 1:
        sys.exit(f"mypy_baseline: expected {SWITCH!r} once in pyproject.toml")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="mypy-baseline-") as config:
        config.write(text.replace(SWITCH, "ignore_errors = false"))
        config.flush()
        result = subprocess.run(  # noqa: S603 (argv is ours)
            [sys.executable, "-m", "mypy", "--config-file", config.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    output = result.stdout + result.stderr
    if result.returncode not in (0, 1) or not re.search(
        r"^(Success|Found \d+ error)", output, re.M
    ):
        print(output, file=sys.stderr)
        sys.exit("mypy_baseline: mypy did not finish")

    failing = {module_name(m["path"]) for m in ERROR_LINE.finditer(output)}
    clean = [p for p in listed if not any(covers(p, m) for m in failing)]
    unlisted = sorted(m for m in failing if not any(covers(p, m) for p in listed))
    for pattern in clean:
        print(f"mypy baseline: {pattern} has no errors now; take it off the list in pyproject.toml")
    for module in unlisted:
        print(f"mypy baseline: {module} has errors and is not on the list; fix them")
    if clean or unlisted:
        return 1
    print(f"mypy baseline: {len(listed)} entries, each still with errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
