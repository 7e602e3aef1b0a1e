"""CSV: a line per row, each cell named by its column's header."""

from __future__ import annotations

import csv
import io

from agentdeck.files.exceptions import ParseError
from agentdeck.files.parsing.base import too_much_text
from agentdeck.files.parsing.text import decoded

# A CSV past this many rows is a data set, not a document to search through.
MAX_CSV_ROWS = 200_000


def parse_csv(data: bytes, max_chars: int) -> list[str]:
    """A line per row, ``header: value, header: value`` (empty cells left out), so each row
    stays meaningful once chunked away from the header. The first non-empty row is the header."""
    text = decoded(data)
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
    for row in csv.reader(io.StringIO(text, newline=""), sniff_dialect(text)):
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
            raise too_much_text(max_chars)
        lines.append(line)
    if header is not None and not lines:
        return ", ".join(header)  # a header alone still names what the file is about
    return "\n".join(lines)


def sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    # csv.Sniffer's regexes are slow on long input: a few KB of whole lines is enough.
    sample = text[:4096]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel
