"""django-q2 entry points: primitive ids in, one service call, nothing else (convention 7)."""

from __future__ import annotations

from agentdeck.files.processing import file_process, files_watchdog


def process_file(file_id: str) -> str:
    return file_process(file_id=file_id)


def watchdog() -> dict[str, int]:
    return files_watchdog()
