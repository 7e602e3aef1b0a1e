"""What the parsing modules share: the accepted types, the two errors (refused at upload, failed
at processing) and the parsed document."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentdeck.core.exceptions import ApplicationError

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

ALLOWED_TYPES: dict[str, str] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    PDF: "pdf",
    DOCX: "docx",
    "text/csv": "csv",
    "application/json": "json",
}


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


@dataclass
class ParsedDocument:
    text: str
    # PDFs only: (page number from 1, offset in ``text`` where that page starts), one per page.
    pages: list[tuple[int, int]] = field(default_factory=list)
    # PDFs: their page count. Other types have no pages and report 0, matching ``pages == []``.
    page_count: int = 0
    char_count: int = 0


def base_mime(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def too_much_text(max_chars: int) -> ParseError:
    return ParseError(
        "too_much_text", f"The file holds more than {max_chars:,} characters of text."
    )
