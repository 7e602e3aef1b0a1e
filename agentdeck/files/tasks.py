"""django-q2 entry points: primitive ids in, one service call, nothing else (convention 7).

Each ends with :func:`~agentdeck.core.realtime.flush`, like the run tasks: progress
notifications leave from a background thread that a recycled worker would not wait for.
"""

from __future__ import annotations

from agentdeck.core import realtime
from agentdeck.files.processing import file_process, files_watchdog


def process_file(file_id: str) -> str:
    try:
        return file_process(file_id=file_id)
    finally:
        realtime.flush()


def watchdog() -> dict[str, int]:
    try:
        return files_watchdog()
    finally:
        realtime.flush()
