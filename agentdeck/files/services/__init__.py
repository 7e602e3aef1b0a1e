"""Files and vector indices: upload, delete, attach, detach, reprocess, index lifecycle.

The processing itself (parse, chunk, embed, write) runs on the worker: ``agentdeck.files.processing``.
``dispatch`` holds what leaves a transaction (the processing task, notifications), ``files`` the
file services, ``indices`` an index's own lifecycle and search, ``attachments`` a file in an index.
"""

from agentdeck.files.services.attachments import vector_index_attach, vector_index_detach
from agentdeck.files.services.dispatch import file_notify, file_processing_enqueue
from agentdeck.files.services.files import file_delete, file_reprocess, file_upload
from agentdeck.files.services.indices import (
    vector_index_create,
    vector_index_delete,
    vector_index_query,
    vector_index_refresh,
    vector_index_update,
)

__all__ = [
    "file_delete",
    "file_notify",
    "file_processing_enqueue",
    "file_reprocess",
    "file_upload",
    "vector_index_attach",
    "vector_index_create",
    "vector_index_delete",
    "vector_index_detach",
    "vector_index_query",
    "vector_index_refresh",
    "vector_index_update",
]
