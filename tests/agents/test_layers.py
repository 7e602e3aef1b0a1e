"""The run path reads one way (view -> service -> queue -> worker -> runtime -> sink): the runtime
reports through ``runtime/sink.py`` and imports no service, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import agentdeck.agents.runtime as runtime

SERVICE_MODULES = ("agentdeck.agents.services", "agentdeck.credits.services")


def imported_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


def test_the_runtime_imports_no_service():
    root = Path(runtime.__file__).parent
    offenders = {
        str(path.relative_to(root)): [
            m for m in imported_modules(path) if m.startswith(SERVICE_MODULES)
        ]
        for path in root.rglob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
