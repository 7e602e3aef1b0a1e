"""What an uploaded file is, judged from its content: the name and the declared ``Content-Type``
are only hints, since the bytes are untrusted."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

from agentdeck.files.exceptions import FileRejected
from agentdeck.files.parsing.base import DOCX, PDF, base_mime
from agentdeck.files.parsing.csv import sniff_dialect
from agentdeck.files.parsing.text import decode_text, html_declared_charset

_MARKDOWN_EXTS = frozenset({"md", "markdown", "mdown", "mkd", "mkdn"})
_HINTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (extensions, declared types)
    "markdown": (_MARKDOWN_EXTS, frozenset({"text/markdown", "text/x-markdown"})),
    "html": (
        frozenset({"html", "htm", "xhtml"}),
        frozenset({"text/html", "application/xhtml+xml"}),
    ),
    "json": (frozenset({"json"}), frozenset({"application/json", "text/json"})),
    "csv": (
        frozenset({"csv", "tsv"}),
        frozenset(
            {
                "text/csv",
                "application/csv",
                "text/x-csv",
                "text/comma-separated-values",
                "text/tab-separated-values",
                # What Windows browsers declare for .csv when Excel is installed.
                "application/vnd.ms-excel",
            }
        ),
    ),
}

# Signatures only used to say what a rejected binary is.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy or password-protected Office file"),
    (b"\x1f\x8b", "a gzip archive"),
)

_HTML_DOCUMENT_RE = re.compile(
    r"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S
)
_HTML_TAGS = (
    r"html|head|body|div|p|span|a|table|tr|td|th|ul|ol|li|h[1-6]|br|meta|title|script|style"
    r"|section|article|header|footer|nav|main|img|form|pre|blockquote|strong|em|b|i"
)
_HTML_TAG_RE = re.compile(rf"<(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>", re.I)
_HTML_CLOSE_TAG_RE = re.compile(rf"</(?:{_HTML_TAGS})\s*>", re.I)


def detect_type(data: bytes, filename: str, declared: str | None = None) -> str:
    """The file's mime type (a key of ``ALLOWED_TYPES``), judged from its content.

    1. PDF: ``%PDF-`` at the start (after whitespace), or within the first KB after binary junk.
    2. DOCX: a zip holding ``word/document.xml``; any other zip (xlsx, jar, ...) is refused.
    3. Anything else must be text under the decoding policy (``parsing.text``), then:
       RTF and XML/SVG are refused; JSON if it parses (an object or array, or any JSON value
       when the name or declared type says JSON); HTML if it opens with a doctype or ``<html>``;
       Markdown if the name or declared type says so; HTML if the hints say so and it has a tag,
       CSV if the hints say so and its first rows are a consistent table of 2+ columns (otherwise
       the file is still accepted as plain text); HTML if it starts with a tag and closes one;
       plain text otherwise.

    Raises ``FileRejected`` with ``empty_file`` (no bytes, or only whitespace) or
    ``unsupported_media_type``.
    """
    if not data:
        raise FileRejected("empty_file", "The file is empty.")
    hints = _hints(filename, declared)

    pdf_at = data.find(b"%PDF-", 0, 1024)
    if pdf_at == 0 or (pdf_at > 0 and not data[:pdf_at].strip()):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        if _is_docx_zip(data):
            return DOCX
        raise FileRejected(
            "unsupported_media_type",
            "The file is a ZIP archive that is not a Word document (.docx); "
            "spreadsheets, presentations and archives are not supported.",
        )

    text = decode_text(data, html_declared_charset(data))
    if text is None:
        if pdf_at > 0:  # a PDF behind a binary preamble (MacBinary and the like)
            return PDF
        raise FileRejected("unsupported_media_type", _describe_binary(data))
    if not text.strip():
        raise FileRejected("empty_file", "The file holds only whitespace.")
    return _detect_text_type(text, hints)


def _hints(filename: str, declared: str | None) -> set[str]:
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].lower()
    ext = base.rpartition(".")[2] if "." in base else ""
    mime = base_mime(declared or "")
    found = {kind for kind, (exts, mimes) in _HINTS.items() if ext in exts or mime in mimes}
    if mime.endswith("+json"):
        found.add("json")
    return found


def _is_docx_zip(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        # A truncated DOCX loses its central directory, but the local header still names the
        # part: accept it here so processing reports docx_corrupt rather than a vague refusal.
        return b"word/document.xml" in data


def _describe_binary(data: bytes) -> str:
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            return f"The file is {what}, which is not supported."
    return (
        "The file is neither PDF, DOCX nor readable text (UTF-8, UTF-16 with a byte order mark, "
        "or Windows-1252)."
    )


def _detect_text_type(text: str, hints: set[str]) -> str:
    head = text[:8192].lstrip()[:4096].lower()
    if head.startswith("{\\rtf"):
        raise FileRejected("unsupported_media_type", "RTF documents are not supported.")
    if head[:1] in ("{", "[") or "json" in hints:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, dict | list) or "json" in hints:
                return "application/json"
    if _HTML_DOCUMENT_RE.match(head):
        return "text/html"
    if head.startswith(("<?xml", "<svg", "<!doctype svg")):
        raise FileRejected("unsupported_media_type", "XML and SVG documents are not supported.")
    if "markdown" in hints:
        return "text/markdown"
    if "html" in hints and _HTML_TAG_RE.search(head):
        return "text/html"
    if "csv" in hints and _looks_like_csv(text):
        return "text/csv"
    if (
        head.startswith("<")
        and _HTML_TAG_RE.match(head)
        and _HTML_CLOSE_TAG_RE.search(text[:65536])
    ):
        return "text/html"
    return "text/plain"


def _looks_like_csv(text: str) -> bool:
    """The first 50 rows are a table: 2+ columns, and 90% of the rows as wide as the first."""
    sample = text[:65536]
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(sample, newline=""), sniff_dialect(sample)):
            rows.append(row)
            if len(rows) > 50:
                break
    except csv.Error:
        pass
    if len(rows) <= 50 and len(sample) < len(text) and rows:
        rows.pop()  # the sample may end inside the last row
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows or len(rows[0]) < 2:
        return False
    width = len(rows[0])
    return sum(len(row) == width for row in rows) >= 0.9 * len(rows)
