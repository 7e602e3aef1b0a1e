"""Test documents for ``agentdeck.files.parsing``, built in code: no binary file is committed.

Each builder returns the bytes of one document. The PDFs are written by hand (the format is
text plus a cross-reference table of byte offsets), so the tests need no PDF-writing library;
pypdf (a runtime dependency) encrypts them and python-docx writes the Word documents.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib

import docx
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from pypdf import PdfReader, PdfWriter


def make_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one page per string, each line of it drawn in Helvetica."""
    count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, text in enumerate(pages):
        page_id, content_id = 4 + 2 * i, 5 + 2 * i
        shown = " ".join(f"({_pdf_escape(line)}) Tj T*" for line in text.split("\n") if line)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET".encode("cp1252")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
        objects[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for number in sorted(objects):
        out += b"%010d 00000 n \n" % offsets[number]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_two_page_pdf() -> bytes:
    return make_pdf(["Page one says hello.\nIt has two lines.", "Page two says goodbye."])


def make_encrypted_pdf(*, user_password: str) -> bytes:
    """The two-page PDF encrypted; an empty user password opens without one (owner-only)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_two_page_pdf())))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_truncated_pdf() -> bytes:
    data = make_two_page_pdf()
    return data[: len(data) // 2]


def make_docx() -> bytes:
    """A Word document with a heading, a paragraph and a 2x2 table, written by python-docx."""
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=2, cols=2)
    for row, values in zip(table.rows, (("Region", "Growth"), ("North", "12%")), strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("End of report.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_docx_with_revisions() -> bytes:
    """A paragraph with tracked changes and a hyperlink, and a table nested in a table cell
    inside a content control: the runs python-docx's ``Paragraph.text`` alone would miss."""
    document = docx.Document()
    paragraph = document.add_paragraph("Kept ")
    paragraph._p.append(
        parse_xml(
            f"<w:ins {nsdecls('w')} w:id='1' w:author='a'><w:r><w:t xml:space='preserve'>inserted "
            "</w:t></w:r></w:ins>"
        )
    )
    paragraph._p.append(
        parse_xml(
            f"<w:del {nsdecls('w')} w:id='2' w:author='a'><w:r><w:delText>deleted</w:delText>"
            "</w:r></w:del>"
        )
    )
    paragraph._p.append(
        parse_xml(f"<w:hyperlink {nsdecls('w')}><w:r><w:t>link</w:t></w:r></w:hyperlink>")
    )
    outer = document.add_table(rows=1, cols=2)
    outer.cell(0, 0).text = "Outer"
    inner_cell = outer.cell(0, 1)
    inner_cell.paragraphs[0].text = "Before"
    inner = inner_cell.add_table(rows=1, cols=2)
    inner.cell(0, 0).text = "in1"
    inner.cell(0, 1).text = "in2"
    body = document.element.body
    control = parse_xml(
        f"<w:sdt {nsdecls('w')}><w:sdtContent><w:p><w:r><w:t>In a content control</w:t>"
        "</w:r></w:p></w:sdtContent></w:sdt>"
    )
    body.insert(len(body) - 1, control)  # before the final w:sectPr
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


_MB = 1024 * 1024


@functools.cache
def make_docx_bomb(gigabytes: int = 1) -> bytes:
    """A ~1 MB zip whose word/document.xml inflates to ``gigabytes`` GB of zeros.

    Deflating 1 GB takes seconds, so one 1 MB block of zeros is deflated once and repeated:
    after a full flush the compressor starts over, so every block compresses to the same bytes
    and their concatenation is one valid deflate stream. The CRC is the real one.
    """
    chunk = bytes(_MB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = 1024 * gigabytes
    stream = block * blocks + compressor.flush()
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(chunk, crc)
    return _zip_of_raw_members(
        [
            ("[Content_Types].xml", b"<Types/>", None),
            ("word/document.xml", stream, (blocks * _MB, crc)),
        ]
    )


def _zip_of_raw_members(members: list[tuple[str, bytes, tuple[int, int] | None]]) -> bytes:
    """A zip written field by field (APPNOTE.TXT 4.3): each member is (name, data, None) to store
    ``data`` as is, or (name, deflated_data, (uncompressed_size, crc32))."""
    out = bytearray()
    central = bytearray()
    for name, data, deflated in members:
        encoded = name.encode()
        method, size, crc = (8, *deflated) if deflated else (0, len(data), zlib.crc32(data))
        offset = len(out)
        out += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size,
            len(encoded), 0,
        )  # fmt: skip
        out += encoded + data
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size,
            len(encoded), 0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += encoded
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0
    )
    return bytes(out + central + end)


def make_docx_ratio_bomb() -> bytes:
    """A real DOCX whose document.xml is replaced by 20 MB of zeros deflated ~1000x: under the
    total limit, over the ratio limit."""
    return _replace_zip_member(make_docx(), "word/document.xml", bytes(20 * _MB))


def make_docx_with_many_entries(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        for i in range(count):
            archive.writestr(f"word/media/{i}.txt", b"")
    return out.getvalue()


def make_docx_with_broken_xml() -> bytes:
    return _replace_zip_member(make_docx(), "word/document.xml", b"<w:document><w:body>")


def make_truncated_docx() -> bytes:
    data = make_docx()
    return data[: len(data) // 2]


def _replace_zip_member(data: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == name else source.read(info))
    return out.getvalue()


def make_xlsx_like_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("xl/workbook.xml", b"<workbook/>")
    return out.getvalue()


def make_png() -> bytes:
    """A valid 1x1 black PNG (signature, IHDR, IDAT, IEND)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">2I5B", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def make_elf() -> bytes:
    """The 64-byte header of an x86-64 ELF executable, then some code-like bytes."""
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    header = struct.pack("<2HI3QI6H", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    return ident + header + bytes(range(256)) * 4


HTML_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Release notes</title>
  <style>body { color: red }</style>
  <script>window.track = function () { return "tracked"; };</script>
</head>
<body>
  <!-- build 1234 -->
  <h1>Version 2.0</h1>
  <p>Faster <b>search</b> and   a new
     <a href="/x">editor</a>.</p>
  <noscript>Enable JavaScript</noscript>
  <template><p>hidden template</p></template>
  <ul><li>First item</li><li>Second item</li></ul>
  <table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>10</td></tr></table>
  <pre>def f():
    return 1</pre>
</body>
</html>
"""

HTML_ONLY_SCRIPTS = b"""<!DOCTYPE html>
<html><head>
<script src="/app.js"></script>
<script>document.write("rendered by JavaScript");</script>
<style>#root { display: flex }</style>
</head><body><div id="root"><script>boot()</script></div>
<noscript></noscript><!-- nothing to see --></body></html>
"""

JSON_DOCUMENT = (
    b'{"agent": {"name": "triage", "tools": ["search", "email"]},'
    b' "limits": {"max_turns": 8, "strict": true, "budget": null}, "tags": []}'
)

CSV_DOCUMENT = (
    b'name,role,notes\r\nAda,engineer,"likes ""quoted"" text, and commas"\r\n'
    b"Linus,,kernel\r\n\r\nGrace,admiral,\r\n"
)

TEN_MB_LINE = b"lorem ipsum " * (10 * _MB // 12)
