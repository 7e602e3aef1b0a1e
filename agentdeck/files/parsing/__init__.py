"""What an uploaded file is, and the text inside it. Pure functions: no models, no database.

The upload view calls :func:`detect_type` (and :func:`sanitize_filename`) and turns
:class:`FileRejected` into a 4xx problem; the processing worker calls :func:`parse` and stores a
:class:`ParseError`'s ``code`` and ``message`` on the failed file. The file's bytes are untrusted:
the type comes from the content, the name and the declared ``Content-Type`` are only hints.

``detect`` judges the type, ``text`` holds the decoding policy both sides share, ``extract``
dispatches to one module per format (``pdf``, ``docx``, ``html``, ``csv``, ``json``; plain text and
Markdown in ``text``), ``base`` the types and the document; the errors (with their stable codes) live in
``agentdeck.files.exceptions`` and are re-exported here.
"""

from agentdeck.files.exceptions import FileRejected, ParseError
from agentdeck.files.parsing.base import (
    ALLOWED_TYPES,
    DOCX,
    PDF,
    ParsedDocument,
)
from agentdeck.files.parsing.csv import MAX_CSV_ROWS
from agentdeck.files.parsing.detect import detect_type
from agentdeck.files.parsing.docx import (
    DOCX_MAX_ENTRIES,
    DOCX_MAX_RATIO,
    DOCX_MAX_UNCOMPRESSED,
    DOCX_RATIO_MIN_SIZE,
)
from agentdeck.files.parsing.extract import parse
from agentdeck.files.parsing.filenames import MAX_FILENAME_BYTES, sanitize_filename

__all__ = [
    "ALLOWED_TYPES",
    "DOCX",
    "DOCX_MAX_ENTRIES",
    "DOCX_MAX_RATIO",
    "DOCX_MAX_UNCOMPRESSED",
    "DOCX_RATIO_MIN_SIZE",
    "MAX_CSV_ROWS",
    "MAX_FILENAME_BYTES",
    "PDF",
    "FileRejected",
    "ParseError",
    "ParsedDocument",
    "detect_type",
    "parse",
    "sanitize_filename",
]
