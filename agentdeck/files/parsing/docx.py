"""Word (DOCX): the body's text in document order, tables a row per line, after refusing
decompression bombs from the zip's central directory."""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable

from agentdeck.files.exceptions import ParseError

# DOCX decompression-bomb limits, checked on the zip's central directory before python-docx
# inflates anything. zipfile never returns more than a member's declared size (it stops there
# and fails the CRC), so the declared sizes are a safe upper bound. Real documents stay far
# below: document.xml of a 500-page report is a few MB, deflated 5-20x.
DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_ENTRIES = 10_000
DOCX_MAX_RATIO = 100
DOCX_RATIO_MIN_SIZE = 10 * 1024 * 1024  # small members may compress better than 100x; harmless


def parse_docx(data: bytes, max_chars: int) -> list[str]:
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

    runs: Callable[[object], list[object]] = etree.XPath(
        ".//w:r[not(ancestor::w:del) and not(ancestor::w:moveFrom) and not(ancestor::mc:Fallback)]",
        namespaces={
            "w": _W[1:-1],
            "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
        },
    )
    return runs


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
