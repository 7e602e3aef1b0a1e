import re
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]


def test_env_example_lists_every_variable_settings_read():
    settings_source = "\n".join(
        path.read_text() for path in sorted((BASE_DIR / "config" / "settings").glob("*.py"))
    )
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    read |= set(re.findall(r'required_in_production\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    serve_source = (BASE_DIR / "agentdeck/core/management/commands/serve.py").read_text()
    read |= set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]+)"', serve_source))
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    assert read, "the pattern found no variables"
    assert read - listed == set(), "missing from .env.example"
