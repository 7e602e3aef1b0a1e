"""``parse``: the text of a file of a detected type, through its format's parser, normalised,
paginated for PDFs and checked against the size limit. Raises only ``ParseError``."""

from __future__ import annotations

from collections.abc import Callable

from agentdeck.files.exceptions import ParseError
from agentdeck.files.parsing.base import (
    ALLOWED_TYPES,
    ParsedDocument,
    base_mime,
    too_much_text,
)
from agentdeck.files.parsing.csv import parse_csv
from agentdeck.files.parsing.docx import parse_docx
from agentdeck.files.parsing.html import parse_html
from agentdeck.files.parsing.json import parse_json
from agentdeck.files.parsing.pdf import parse_pdf
from agentdeck.files.parsing.text import parse_text


def parse(data: bytes, mime: str, *, max_chars: int = 20_000_000) -> ParsedDocument:
    """The text of a file whose type :func:`detect_type` returned.

    Newlines become ``\\n`` and NUL characters are dropped. Raises only ``ParseError``: anything
    a parser library throws becomes ``parse_failed`` (or its format's ``*_corrupt``).
    """
    kind = ALLOWED_TYPES.get(base_mime(mime))
    if kind is None:
        raise ParseError("unsupported_media_type", f"Files of type {mime!r} cannot be parsed.")
    try:
        segments = _PARSERS[kind](data, max_chars)
        return _assemble(segments, paginated=kind == "pdf", max_chars=max_chars)
    except ParseError:
        raise
    except Exception as exc:  # a parser library's own bug or limit; never escapes as itself
        raise ParseError(
            "parse_failed", f"The {kind} file could not be parsed ({type(exc).__name__})."
        ) from exc


def _assemble(segments: list[str], *, paginated: bool, max_chars: int) -> ParsedDocument:
    pages: list[tuple[int, int]] = []
    if paginated:
        parts: list[str] = []
        offset = 0
        for number, segment in enumerate(segments, start=1):
            page_text = _normalize(segment).strip()
            pages.append((number, offset))
            parts.append(page_text)
            offset += len(page_text) + 2  # the "\n\n" between pages
        text = "\n\n".join(parts)
    else:
        text = _normalize("".join(segments)).strip()
    if len(text) > max_chars:
        raise too_much_text(max_chars)
    if not text.strip():
        raise ParseError(
            "no_text",
            "The file has no extractable text (a scanned PDF would need OCR, which is not done).",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (a JSON "\ud800", a broken PDF font map) cannot be stored in PostgreSQL.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return ParsedDocument(
        text=text, pages=pages, page_count=len(segments) if paginated else 0, char_count=len(text)
    )


def _normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


_PARSERS: dict[str, Callable[[bytes, int], list[str]]] = {
    "text": parse_text,
    "markdown": parse_text,
    "html": parse_html,
    "pdf": parse_pdf,
    "docx": parse_docx,
    "csv": parse_csv,
    "json": parse_json,
}
