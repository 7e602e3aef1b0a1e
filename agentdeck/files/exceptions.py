"""The files domain's errors. ``ApplicationError`` subclasses render as problem+json with their
stable ``code``; ``ParseError`` is not an HTTP error: its ``code`` is stored on the failed file."""

from __future__ import annotations

from agentdeck.core.exceptions import ApplicationError


class FileTooLarge(ApplicationError):
    status = 413
    code = "file_too_large"
    title = "File too large"


class UnsupportedMediaType(ApplicationError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class InvalidFile(ApplicationError):
    status = 400
    code = "invalid_file"
    title = "Invalid file"


class InvalidIndex(ApplicationError):
    status = 400
    code = "invalid_vector_index"
    title = "Invalid vector index"


class FileRejected(ApplicationError):
    """The upload is refused before it is stored; the API renders it as problem+json."""

    title = "File rejected"

    def __init__(self, code: str, message: str) -> None:
        status = 415 if code == "unsupported_media_type" else 400
        super().__init__(message, code=code, status=status)
        self.message = message


class ParseError(Exception):
    """Processing failed; ``code`` is stable (stored as the failed file's ``error_code``):

    ``unsupported_media_type``  parse() was given a type outside ``ALLOWED_TYPES``
    ``pdf_encrypted``           the PDF needs a password (an empty user password is tried)
    ``pdf_corrupt``             pypdf cannot open the PDF, or no page of it can be read
    ``docx_too_large``          the DOCX zip would inflate past the limits (decompression bomb)
    ``docx_corrupt``            not a readable zip / Word package
    ``text_not_utf8``           text, HTML, CSV or JSON bytes that fail the decoding policy
    ``json_invalid``            JSON that does not parse (or nests too deeply)
    ``csv_too_many_rows``       more than ``MAX_CSV_ROWS`` data rows
    ``too_much_text``           the extracted text is longer than ``max_chars``
    ``no_text``                 parsed, but nothing to index (a scanned PDF, a page of only scripts)
    ``parse_failed``            any other failure inside a parser library
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EmbeddingError(ApplicationError):
    status = 502
    code = "embedding_failed"
    title = "Embedding failed"
