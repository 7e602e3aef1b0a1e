"""What an uploaded file is, and the text inside it. Pure functions: no models, no database.

The upload view calls :func:`detect_type` (and :func:`sanitize_filename`) and turns
:class:`FileRejected` into a 4xx problem; the processing worker calls :func:`parse` and stores a
:class:`ParseError`'s ``code`` and ``message`` on the failed file. The file's bytes are untrusted:
the type comes from the content, the name and the declared ``Content-Type`` are only hints.

Text decoding policy (shared by detection and parsing, so a file accepted at upload decodes the
same way at processing):

1. A byte order mark wins: UTF-8, UTF-16 or UTF-32 (LE/BE). UTF-16/32 without a BOM is binary.
2. Otherwise any NUL byte means binary.
3. Strict UTF-8, accepted unless more than 1% of the characters are control characters.
4. Otherwise the charset an HTML ``<meta>`` declares, then Windows-1252 (what browsers use for
   ISO-8859-1 too), accepted only if the result holds no control character at all (tab, newlines,
   form feed and ESC excepted): legacy 8-bit text, never binary that happens to decode.

What fails the policy is rejected at upload (``unsupported_media_type``) and fails parsing with
``text_not_utf8``.

Stable ``ParseError`` codes (stored as the failed file's ``error_code``):

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

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Callable
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

# DOCX decompression-bomb limits, checked on the zip's central directory before python-docx
# inflates anything. zipfile never returns more than a member's declared size (it stops there
# and fails the CRC), so the declared sizes are a safe upper bound. Real documents stay far
# below: document.xml of a 500-page report is a few MB, deflated 5-20x.
DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_ENTRIES = 10_000
DOCX_MAX_RATIO = 100
DOCX_RATIO_MIN_SIZE = 10 * 1024 * 1024  # small members may compress better than 100x; harmless

# A CSV past this many rows is a data set, not a document to search through.
MAX_CSV_ROWS = 200_000

MAX_FILENAME_BYTES = 255  # ext4, APFS, NTFS (in UTF-16 units) and FileMetadata.name


class FileRejected(ApplicationError):
    """The upload is refused before it is stored; the API renders it as problem+json."""

    title = "File rejected"

    def __init__(self, code: str, message: str) -> None:
        status = 415 if code == "unsupported_media_type" else 400
        super().__init__(message, code=code, status=status)
        self.message = message


class ParseError(Exception):
    """Processing failed; ``code`` is one of the stable codes in the module docstring."""

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


# --- file names -------------------------------------------------------------------------------

# Bidirectional overrides turn "invoice\u202efdp.exe" into what displays as "invoiceexe.pdf".
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# Tabs and line breaks become spaces; other control characters (str.split() also counts
# \x1c-\x1f as whitespace) are dropped.
_WHITESPACE_CONTROLS = str.maketrans(dict.fromkeys("\t\n\r\x0b\x0c", " "))


def sanitize_filename(name: str) -> str:
    """The name to show and store for an upload: never a path, printable, at most 255 bytes."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.translate(_WHITESPACE_CONTROLS)
    name = "".join(
        ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cs") and ch not in _BIDI_CONTROLS
    )
    name = " ".join(name.split())
    # Leading dots hide a file ("..", ".bashrc"); trailing dots and spaces vanish on Windows.
    name = name.lstrip(". ").rstrip(". ")
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem or len(ext.encode("utf-8")) > 16 or " " in ext:
            stem, ext = name, ""
        else:
            ext = "." + ext
        budget = MAX_FILENAME_BYTES - len(ext.encode("utf-8"))
        # Cut on bytes, then drop the partial character the cut may leave.
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
        name = (stem or "file") + ext
    return name or "file"


# --- type detection ---------------------------------------------------------------------------

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

_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_META_CHARSET_RE = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.I
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
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
    3. Anything else must be text under the decoding policy (module docstring), then:
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

    text = _decode_text(data, _html_declared_charset(data))
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
    mime = _base_mime(declared or "")
    found = {kind for kind, (exts, mimes) in _HINTS.items() if ext in exts or mime in mimes}
    if mime.endswith("+json"):
        found.add("json")
    return found


def _base_mime(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


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
        for row in csv.reader(io.StringIO(sample, newline=""), _sniff_dialect(sample)):
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


def _sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    # csv.Sniffer's regexes are slow on long input: a few KB of whole lines is enough.
    sample = text[:4096]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _html_declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET_RE.search(data[:4096])
    if not match:
        return None
    try:
        name = codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None
    # UTF-16/32 need a BOM (rule 1); UTF-8 was already tried; UTF-7 hides markup from filters.
    return None if name.startswith(("utf-16", "utf-32", "utf-8", "utf-7")) else name


def _decode_text(data: bytes, fallback: str | None = None) -> str | None:
    """Text under the module's decoding policy, or None when the bytes are not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return text if _controls(text) <= len(text) / 100 else None
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return text if _controls(text) <= len(text) / 100 else None
    for encoding in (fallback, "cp1252"):
        if encoding is None:
            continue
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        return None if _CONTROL_RE.search(text) else text
    return None


def _controls(text: str) -> int:
    return len(_CONTROL_RE.findall(text))


# --- parsing ----------------------------------------------------------------------------------


def parse(data: bytes, mime: str, *, max_chars: int = 20_000_000) -> ParsedDocument:
    """The text of a file whose type :func:`detect_type` returned.

    Newlines become ``\\n`` and NUL characters are dropped. Raises only ``ParseError``: anything
    a parser library throws becomes ``parse_failed`` (or its format's ``*_corrupt``).
    """
    kind = ALLOWED_TYPES.get(_base_mime(mime))
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
        raise _too_much_text(max_chars)
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


def _too_much_text(max_chars: int) -> ParseError:
    return ParseError(
        "too_much_text", f"The file holds more than {max_chars:,} characters of text."
    )


def _decoded(data: bytes) -> str:
    text = _decode_text(data, _html_declared_charset(data))
    if text is None:
        raise ParseError(
            "text_not_utf8",
            "The text is neither UTF-8, UTF-16/32 with a byte order mark, nor clean Windows-1252.",
        )
    return text


def _parse_text(data: bytes, max_chars: int) -> list[str]:
    return [_decoded(data)]


def _parse_pdf(data: bytes, max_chars: int) -> list[str]:
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except Exception as exc:  # an unsupported cipher is as good as a password here
                raise ParseError("pdf_encrypted", "The PDF is encrypted.") from exc
            if decrypted == PasswordType.NOT_DECRYPTED:
                raise ParseError("pdf_encrypted", "The PDF is protected by a password.")
        pages = list(reader.pages)
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError("pdf_corrupt", "The PDF is damaged or truncated.") from exc

    texts: list[str] = []
    failed = 0
    total = 0
    for page in pages:
        try:
            page_text = page.extract_text() or ""
        except Exception:
            # One broken page (a bad content stream or font) should not cost the others.
            failed += 1
            page_text = ""
        total += len(page_text.strip()) + 2
        if total > max_chars + 2:  # no separator after the last page
            raise _too_much_text(max_chars)
        texts.append(page_text)
    if pages and failed == len(pages):
        raise ParseError("pdf_corrupt", "No page of the PDF could be read.")
    return texts


def _parse_docx(data: bytes, max_chars: int) -> list[str]:
    _check_docx_archive(data)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        _docx_lines(document.element.body, lines)
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError("docx_corrupt", "The Word document is damaged.") from exc
    return ["\n".join(lines)]


def _check_docx_archive(data: bytes) -> None:
    """Refuse decompression bombs from the central directory, before anything is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ParseError("docx_corrupt", "The Word document is not a readable ZIP file.") from exc
    if len(members) > DOCX_MAX_ENTRIES:
        raise ParseError(
            "docx_too_large", f"The Word document has over {DOCX_MAX_ENTRIES:,} parts."
        )
    total = 0
    for member in members:
        total += member.file_size
        if total > DOCX_MAX_UNCOMPRESSED:
            raise ParseError(
                "docx_too_large",
                f"The Word document would inflate to over {DOCX_MAX_UNCOMPRESSED // 2**20} MB.",
            )
        if member.file_size > DOCX_RATIO_MIN_SIZE and member.file_size > DOCX_MAX_RATIO * max(
            member.compress_size, 1
        ):
            raise ParseError(
                "docx_too_large",
                f"A part of the Word document inflates over {DOCX_MAX_RATIO}x (a ZIP bomb).",
            )


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@functools.cache
def _docx_runs() -> Callable[[object], list[object]]:
    """XPath to every run of a paragraph, also those in hyperlinks, insertions, fields and text
    boxes; not deleted or moved-away text, nor the VML fallback copy of a text box."""
    from lxml import etree

    return etree.XPath(
        ".//w:r[not(ancestor::w:del) and not(ancestor::w:moveFrom) and not(ancestor::mc:Fallback)]",
        namespaces={
            "w": _W[1:-1],
            "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
        },
    )


def _docx_lines(container: object, lines: list[str]) -> None:
    """Append a body's (or a table cell's) text in document order: a line per paragraph, a line
    per table row with its cells joined by " | "; content controls (w:sdt) are entered."""
    from docx.text.run import Run

    runs = _docx_runs()
    for child in container.iterchildren():  # type: ignore[attr-defined]
        if child.tag == f"{_W}p":
            lines.append("".join(Run(run, None).text for run in runs(child)))  # type: ignore[arg-type]
        elif child.tag == f"{_W}tbl":
            for row in child.iterchildren(f"{_W}tr"):
                cells = []
                for cell in row.iterchildren(f"{_W}tc"):
                    inner: list[str] = []
                    _docx_lines(cell, inner)
                    cells.append(" ".join(part.strip() for part in inner if part.strip()))
                if any(cells):
                    lines.append(" | ".join(cells))
        elif child.tag == f"{_W}sdt":
            for content in child.iterchildren(f"{_W}sdtContent"):
                _docx_lines(content, lines)


# HTML: text outside <pre> has its whitespace collapsed; <pre> (and <br>) keep theirs, hidden
# behind private-use characters until the end so the collapsing passes cannot touch it. A block
# element asks for a line break ("\n"), a paragraph-like one for a blank line (_PARAGRAPH); a
# run of requests becomes the largest one asked for, not their sum.
_PARAGRAPH = "\ue003"
_PRE_KEEP = str.maketrans({"\n": "\ue000", " ": "\ue001", "\t": "\ue002"})
_PRE_RESTORE = str.maketrans({"\ue000": "\n", "\ue001": " ", "\ue002": "\t"})
_PRIVATE_DROP = str.maketrans(dict.fromkeys("\ue000\ue001\ue002\ue003"))
# The patterns start with a literal or a narrow class, and single spaces are left alone, so a
# 10 MB text node takes a few hundredths of a second per pass.
_WHITESPACE_RE = re.compile(r"[^\S ]\s*")  # then _SPACES_RE merges what it leaves doubled
_SPACES_RE = re.compile(r"  +")
_BREAKS_RE = re.compile(r"[\n\ue003][ \n\ue003]*")

_HTML_DROPPED = (
    "script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas",
)  # fmt: skip
_HTML_PARAGRAPHS = frozenset((
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol", "dl",
    "section", "article", "aside", "header", "footer", "nav", "main", "figure", "form",
    "fieldset", "hr", "address", "details", "title",
))  # fmt: skip
_HTML_LINES = frozenset((
    "div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "legend", "option",
    "thead", "tbody", "tfoot", "center", "menu", "dialog", "body", "html", "head",
))  # fmt: skip


def _parse_html(data: bytes, max_chars: int) -> list[str]:
    from lxml import etree
    from lxml import html as lxml_html

    text = _decoded(data)
    # Re-encoded as UTF-8 and said so: lxml refuses str input with an XML encoding declaration,
    # and a <meta charset> must not override the decoding policy. huge_tree lets a text node
    # pass 10 MB; the walk below is iterative, so depth cannot exhaust the stack.
    parser = lxml_html.HTMLParser(
        encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True, no_network=True
    )
    try:
        root = lxml_html.document_fromstring(text.encode("utf-8"), parser=parser)
    except etree.ParserError:  # "Document is empty": nothing but comments or whitespace
        return [""]
    for element in list(root.iter(*_HTML_DROPPED)):
        if element.getparent() is not None:
            element.drop_tree()  # keeps the text that follows it

    parts: list[str] = []
    in_pre = 0

    def emit(piece: str | None) -> None:
        if piece:
            piece = piece.translate(_PRIVATE_DROP)
            parts.append(piece.translate(_PRE_KEEP) if in_pre else _WHITESPACE_RE.sub(" ", piece))

    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _HTML_PARAGRAPHS:
                parts.append(_PARAGRAPH)
            elif tag in _HTML_LINES:
                parts.append("\n")
            elif tag == "br":
                parts.append("\ue000")
            elif tag in ("td", "th") and element.getprevious() is not None:
                parts.append(" | ")
            if tag == "pre":
                in_pre += 1
            emit(element.text)
        else:
            if tag == "pre":
                in_pre -= 1
            if tag in _HTML_PARAGRAPHS:
                parts.append(_PARAGRAPH)
            elif tag in _HTML_LINES:
                parts.append("\n")
            emit(element.tail)

    out = _SPACES_RE.sub(" ", "".join(parts))
    # No space at either end of a line (only text outside <pre> has real spaces).
    for mark in ("\n", _PARAGRAPH, "\ue000"):
        out = out.replace(" " + mark, mark)
    out = out.replace("\ue000 ", "\ue000")
    out = _BREAKS_RE.sub(lambda match: "\n\n" if _PARAGRAPH in match.group() else "\n", out)
    return [out.strip(" \n").translate(_PRE_RESTORE)]


def _parse_csv(data: bytes, max_chars: int) -> list[str]:
    """A line per row, ``header: value, header: value`` (empty cells left out), so each row
    stays meaningful once chunked away from the header. The first non-empty row is the header."""
    text = _decoded(data)
    try:
        return [_csv_lines(text, max_chars)]
    except csv.Error:
        # A field over csv's 128 KB limit or broken quoting further down than detection looked:
        # the text is still worth indexing as it is.
        return [text]


def _csv_lines(text: str, max_chars: int) -> str:
    header: list[str] | None = None
    lines: list[str] = []
    total = 0
    for row in csv.reader(io.StringIO(text, newline=""), _sniff_dialect(text)):
        cells = [" ".join(cell.split()) for cell in row]
        if not any(cells):
            continue
        if header is None:
            header = [cell or f"column {i}" for i, cell in enumerate(cells, start=1)]
            continue
        if len(lines) >= MAX_CSV_ROWS:
            raise ParseError("csv_too_many_rows", f"The CSV has over {MAX_CSV_ROWS:,} rows.")
        names = header
        if len(cells) > len(header):
            names = header + [f"column {i}" for i in range(len(header) + 1, len(cells) + 1)]
        # A short row simply lacks its last columns.
        pairs = zip(names, cells, strict=False)
        line = ", ".join(f"{name}: {value}" for name, value in pairs if value)
        total += len(line) + 1
        if total > max_chars:
            raise _too_much_text(max_chars)
        lines.append(line)
    if header is not None and not lines:
        return ", ".join(header)  # a header alone still names what the file is about
    return "\n".join(lines)


def _parse_json(data: bytes, max_chars: int) -> list[str]:
    text = _decoded(data)
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ParseError("json_invalid", "The JSON nests too deeply.") from exc
    except ValueError as exc:
        raise ParseError("json_invalid", f"The JSON does not parse: {exc}") from exc
    return [_flatten_json(value, max_chars)]


def _flatten_json(value: object, max_chars: int) -> str:
    """One ``path.to.key: value`` line per leaf (``items[2].name: x``), in document order, so a
    chunk of the text still says where each value sits. Iterative: depth is not a risk."""
    lines: list[str] = []
    total = 0
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict) and node:
            keys = list(node)
            stack.extend(
                (f"{path}.{key}" if path else str(key), node[key]) for key in reversed(keys)
            )
            continue
        if isinstance(node, list) and node:
            stack.extend((f"{path}[{i}]", node[i]) for i in reversed(range(len(node))))
            continue
        if isinstance(node, str):
            leaf = node
        elif isinstance(node, dict):
            leaf = "{}"
        else:  # numbers, booleans, null, []
            leaf = json.dumps(node)
        line = f"{path}: {leaf}" if path else leaf
        total += len(line) + 1
        if total > max_chars:
            raise _too_much_text(max_chars)
        lines.append(line)
    return "\n".join(lines)


_PARSERS: dict[str, Callable[[bytes, int], list[str]]] = {
    "text": _parse_text,
    "markdown": _parse_text,
    "html": _parse_html,
    "pdf": _parse_pdf,
    "docx": _parse_docx,
    "csv": _parse_csv,
    "json": _parse_json,
}
