"""What leaves a files transaction: the processing task, and the owner's notifications."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from agentdeck.core.queue import enqueue
from agentdeck.core.realtime import notify_user_on_commit
from agentdeck.files.models import FileMetadata


def file_notify(file: FileMetadata, kind: str, **extra: Any) -> None:
    """``file.processing`` (with ``percent``), ``file.ready`` or ``file.failed`` on the owner's
    notification stream, after commit."""
    notify_user_on_commit(
        file.owner_id,
        kind,
        {
            "file_id": str(file.id),
            "name": file.name,
            "status": file.status,
            "percent": file.progress,
            "chunk_count": file.chunk_count,
            "error_code": file.error_code,
            "error_message": file.error_message,
            **extra,
        },
    )


def file_processing_enqueue(file_id: Any) -> None:
    enqueue(
        "agentdeck.files.tasks.process_file",
        str(file_id),
        task_name=f"file:{file_id}",
        group="files",
        # Embedding a 50 MB PDF on a CPU can outlast a run's task timeout. Should the broker
        # deliver the task again meanwhile, the copy finds the file claimed and leaves.
        timeout=settings.FILE_PROCESSING_TIMEOUT_SECONDS,
    )
