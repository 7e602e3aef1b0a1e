"""What the parsing modules share: the accepted types and the parsed document (the two errors,
refused at upload and failed at processing, are in agentdeck.files.exceptions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentdeck.files.exceptions import ParseError

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
