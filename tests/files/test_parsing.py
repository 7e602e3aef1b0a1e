"""File type detection, file name cleaning and text extraction (``agentdeck.files.parsing``).

Pure functions: no database. Every document is built in code by ``tests.files.fixtures``.
"""

from __future__ import annotations

import codecs
import time

import pytest

from agentdeck.core.exceptions import ApplicationError
from agentdeck.files import parsing
from agentdeck.files.parsing import (
    ALLOWED_TYPES,
    DOCX,
    PDF,
    FileRejected,
    ParseError,
    detect_type,
    parse,
    sanitize_filename,
)
from tests.files import fixtures

# --- detect_type: each allowed type ---------------------------------------------------------


def test_allowed_types_are_the_seven_supported_formats():
    assert set(ALLOWED_TYPES) == {
        "text/plain",
        "text/markdown",
        "text/html",
        PDF,
        DOCX,
        "text/csv",
        "application/json",
    }


def test_a_pdf_is_a_pdf_whatever_its_name_or_declared_type():
    assert detect_type(fixtures.make_two_page_pdf(), "notes.txt", "text/plain") == PDF


def test_a_pdf_after_leading_whitespace_is_a_pdf():
    assert detect_type(b"\r\n  " + fixtures.make_two_page_pdf(), "x") == PDF


def test_a_pdf_behind_a_binary_preamble_is_a_pdf():
    assert detect_type(b"\x00\x01junk\xff" + fixtures.make_two_page_pdf(), "x.bin") == PDF


def test_a_truncated_pdf_is_still_detected_so_processing_reports_it():
    assert detect_type(fixtures.make_truncated_pdf(), "report.pdf") == PDF


def test_a_docx_is_a_docx_even_named_pdf():
    assert detect_type(fixtures.make_docx(), "report.pdf", "application/pdf") == DOCX


def test_a_truncated_docx_is_still_detected_so_processing_reports_it():
    assert detect_type(fixtures.make_truncated_docx(), "report.docx") == DOCX


def test_plain_text_is_text_plain():
    assert detect_type(b"Just some notes.\nSecond line.\n", "notes.txt") == "text/plain"


def test_text_without_a_name_is_text_plain():
    assert detect_type(b"# Title\n\nbody", "") == "text/plain"


@pytest.mark.parametrize(
    ("filename", "declared"),
    [("README.md", None), ("notes.markdown", None), ("notes", "text/markdown; charset=utf-8")],
)
def test_markdown_is_recognised_by_its_name_or_declared_type(filename, declared):
    assert detect_type(b"# Title\n\nSome *text*.\n", filename, declared) == "text/markdown"


def test_markdown_with_inline_html_stays_markdown():
    data = b'<div align="center"><img src="logo.png"></div>\n\n# Project\n'
    assert detect_type(data, "README.md") == "text/markdown"


def test_an_html_document_is_html_even_named_txt():
    assert detect_type(fixtures.HTML_PAGE, "page.txt", "text/plain") == "text/html"


def test_an_xhtml_document_with_an_xml_declaration_is_html():
    data = b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body><p>x</p></body></html>'
    assert detect_type(data, "page.xhtml") == "text/html"


def test_an_html_fragment_is_html_when_the_name_says_so():
    assert detect_type(b"Intro <p>para</p>", "fragment.html") == "text/html"


def test_an_html_fragment_without_a_hint_is_html_when_it_starts_with_a_tag():
    assert detect_type(b"<div><p>Hello</p></div>", "upload") == "text/html"


def test_text_mentioning_a_tag_is_not_html():
    assert detect_type(b"Use the <p> tag for paragraphs.", "notes.txt") == "text/plain"


@pytest.mark.parametrize(
    ("filename", "declared"),
    [
        ("data.csv", None),
        ("data", "text/csv"),
        ("data.tsv", None),
        ("x", "application/vnd.ms-excel"),
    ],
)
def test_a_consistent_table_is_csv_when_the_name_or_declared_type_says_so(filename, declared):
    data = fixtures.CSV_DOCUMENT
    if filename.endswith(".tsv"):
        data = b"a\tb\tc\n1\t2\t3\n4\t5\t6\n"
    assert detect_type(data, filename, declared) == "text/csv"


def test_a_table_without_a_csv_hint_is_plain_text():
    assert detect_type(fixtures.CSV_DOCUMENT, "data.txt") == "text/plain"


def test_prose_named_csv_is_plain_text():
    data = b"Dear team, thanks.\nThe meeting moved to Tuesday, 10am, room 4, floor 2.\nBye\n"
    assert detect_type(data, "letter.csv") == "text/plain"


def test_a_json_object_is_json_whatever_its_name():
    assert detect_type(fixtures.JSON_DOCUMENT, "config.txt") == "application/json"


def test_a_json_scalar_is_json_only_when_the_name_says_so():
    assert detect_type(b'"hello"', "value.json") == "application/json"
    assert detect_type(b"42", "answer.txt") == "text/plain"


def test_invalid_json_named_json_is_plain_text():
    assert detect_type(b'{"a": 1,', "broken.json") == "text/plain"


def test_deeply_nested_brackets_do_not_crash_detection():
    assert detect_type(b"[" * 100_000, "brackets.txt") == "text/plain"


def test_utf16_with_a_bom_is_text():
    assert detect_type("Grüße aus Köln\n".encode("utf-16"), "greeting.txt") == "text/plain"


def test_utf8_with_a_bom_is_text():
    assert detect_type(codecs.BOM_UTF8 + b"hello", "a.txt") == "text/plain"


def test_windows_1252_text_is_accepted():
    data = "Caf\u00e9 \u2013 \u201cna\u00efve\u201d d\u00e9j\u00e0 vu \u20ac5".encode("cp1252")
    assert detect_type(data, "legacy.txt") == "text/plain"


def test_ten_megabyte_single_line_is_detected_quickly():
    started = time.perf_counter()
    assert detect_type(fixtures.TEN_MB_LINE, "big.txt") == "text/plain"
    assert detect_type(fixtures.TEN_MB_LINE, "big.csv") == "text/plain"  # no whole row in sample
    assert time.perf_counter() - started < 5


# --- detect_type: rejections -------------------------------------------------------------------


def test_empty_file_is_rejected():
    with pytest.raises(FileRejected) as caught:
        detect_type(b"", "empty.txt", "text/plain")
    assert caught.value.code == "empty_file"
    assert caught.value.status == 400


@pytest.mark.parametrize("data", [b"  \r\n\t\n", codecs.BOM_UTF8, "\n".encode("utf-16")])
def test_whitespace_only_file_is_rejected_as_empty(data):
    with pytest.raises(FileRejected) as caught:
        detect_type(data, "blank.txt")
    assert caught.value.code == "empty_file"


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (fixtures.make_png(), "PNG"),
        (fixtures.make_elf(), "ELF"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "Office"),
        (bytes(range(256)) * 8, "neither PDF"),
    ],
)
def test_binary_renamed_txt_is_rejected(data, what):
    with pytest.raises(FileRejected) as caught:
        detect_type(data, "innocent.txt", "text/plain")
    assert caught.value.code == "unsupported_media_type"
    assert caught.value.status == 415
    assert what in caught.value.message


def test_a_zip_that_is_not_a_word_document_is_rejected():
    with pytest.raises(FileRejected) as caught:
        detect_type(fixtures.make_xlsx_like_zip(), "sheet.docx", DOCX)
    assert caught.value.code == "unsupported_media_type"


def test_a_corrupt_zip_without_a_word_part_is_rejected():
    with pytest.raises(FileRejected) as caught:
        detect_type(b"PK\x03\x04" + bytes(100), "archive.zip")
    assert caught.value.code == "unsupported_media_type"


@pytest.mark.parametrize(
    "data",
    [
        b"{\\rtf1\\ansi Hello}",
        b'<?xml version="1.0"?><feed><entry>x</entry></feed>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>hi</text></svg>',
    ],
)
def test_text_formats_outside_the_allowed_list_are_rejected(data):
    with pytest.raises(FileRejected) as caught:
        detect_type(data, "doc.txt")
    assert caught.value.code == "unsupported_media_type"


def test_utf16_without_a_bom_is_rejected():
    with pytest.raises(FileRejected) as caught:
        detect_type("no byte order mark".encode("utf-16-le"), "a.txt")
    assert caught.value.code == "unsupported_media_type"


def test_legacy_bytes_with_control_characters_are_rejected():
    with pytest.raises(FileRejected) as caught:
        detect_type(b"caf\xe9\x01\x02 binary-ish", "a.txt")
    assert caught.value.code == "unsupported_media_type"


def test_utf8_with_many_control_characters_is_rejected():
    with pytest.raises(FileRejected):
        detect_type(b"ab\x01\x02\x03\x04cd" * 100, "a.txt")


def test_file_rejected_is_an_application_error_rendered_as_problem_json():
    error = FileRejected("unsupported_media_type", "nope")
    assert isinstance(error, ApplicationError)
    assert (error.code, error.message, error.detail, error.status) == (
        "unsupported_media_type",
        "nope",
        "nope",
        415,
    )


# --- sanitize_filename -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.pdf", "y.pdf"),
        ("/srv/uploads/\\..\\evil.txt", "evil.txt"),
        ("...", "file"),
        ("..", "file"),
        ("", "file"),
        ("dir/", "file"),
        (".bashrc", "bashrc"),
        ("..hidden.md", "hidden.md"),
        ("trailing dots...", "trailing dots"),
        ("a\x00b\x1fc\x7f.txt", "abc.txt"),
        ("line\nbreak\ttab.txt", "line break tab.txt"),
        ("  lots   of\u3000 space  .txt", "lots of space .txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # NFC: e + combining acute -> é
        ("\x01\x02", "file"),
    ],
)
def test_sanitize_filename(raw, clean):
    assert sanitize_filename(raw) == clean


def test_a_long_name_is_cut_to_255_bytes_keeping_its_extension():
    clean = sanitize_filename("a" * 400 + ".pdf")
    assert clean == "a" * 251 + ".pdf"
    assert len(clean.encode()) == 255


def test_a_long_multibyte_name_is_cut_between_characters():
    clean = sanitize_filename("é" * 200 + ".docx")  # 2 bytes each: 405 bytes
    assert clean.endswith(".docx")
    assert clean.removesuffix(".docx") == "é" * 125
    assert len(clean.encode()) <= 255


def test_a_long_name_whose_extension_is_not_one_is_cut_whole():
    clean = sanitize_filename("x." + "y" * 300)
    assert len(clean.encode()) == 255
    assert clean.startswith("x.yyy")


# --- parse: PDF ---------------------------------------------------------------------------------


def test_a_pdf_is_parsed_page_by_page_with_page_offsets():
    doc = parse(fixtures.make_two_page_pdf(), PDF)
    assert doc.text == "Page one says hello.\nIt has two lines.\n\nPage two says goodbye."
    assert doc.page_count == 2
    assert doc.pages == [(1, 0), (2, doc.text.index("Page two"))]
    assert doc.char_count == len(doc.text)


def test_a_pdf_with_an_empty_page_keeps_every_page_offset():
    doc = parse(fixtures.make_pdf(["First", "", "Third"]), PDF)
    assert doc.text == "First\n\n\n\nThird"
    assert [number for number, _ in doc.pages] == [1, 2, 3]
    assert doc.text[doc.pages[2][1] :] == "Third"


def test_a_password_protected_pdf_fails_as_encrypted():
    with pytest.raises(ParseError) as caught:
        parse(fixtures.make_encrypted_pdf(user_password="secret"), PDF)
    assert caught.value.code == "pdf_encrypted"


def test_an_encrypted_pdf_with_an_empty_user_password_is_read():
    doc = parse(fixtures.make_encrypted_pdf(user_password=""), PDF)
    assert doc.page_count == 2
    assert "Page two says goodbye." in doc.text


@pytest.mark.parametrize(
    "data", [fixtures.make_truncated_pdf(), b"%PDF-1.7\n" + bytes(64), b"%PDF-"]
)
def test_a_corrupt_pdf_fails_as_corrupt(data):
    with pytest.raises(ParseError) as caught:
        parse(data, PDF)
    assert caught.value.code == "pdf_corrupt"


def test_a_pdf_without_text_fails_as_no_text():
    with pytest.raises(ParseError) as caught:
        parse(fixtures.make_pdf(["", ""]), PDF)
    assert caught.value.code == "no_text"


def test_a_pdf_over_max_chars_fails_as_too_much_text():
    with pytest.raises(ParseError) as caught:
        parse(fixtures.make_two_page_pdf(), PDF, max_chars=30)
    assert caught.value.code == "too_much_text"


def test_a_pdf_exactly_at_max_chars_is_accepted():
    pdf = fixtures.make_two_page_pdf()
    length = parse(pdf, PDF).char_count
    assert parse(pdf, PDF, max_chars=length).char_count == length
    with pytest.raises(ParseError):
        parse(pdf, PDF, max_chars=length - 1)


# --- parse: DOCX --------------------------------------------------------------------------------


def test_a_docx_yields_its_paragraphs_and_table_rows_in_order():
    doc = parse(fixtures.make_docx(), DOCX)
    assert doc.text == (
        "Quarterly report\nRevenue grew in every region.\nRegion | Growth\nNorth | 12%\nEnd of report."
    )
    assert (doc.pages, doc.page_count, doc.char_count) == ([], 0, len(doc.text))


def test_a_docx_keeps_insertions_links_nested_tables_and_content_controls_but_not_deletions():
    assert parse(fixtures.make_docx_with_revisions(), DOCX).text == (
        "Kept inserted link\nOuter | Before in1 | in2\nIn a content control"
    )


def test_a_docx_inflating_to_a_gigabyte_fails_before_it_is_opened(monkeypatch):
    def must_not_open(*args, **kwargs):
        raise AssertionError("python-docx opened a zip bomb")

    monkeypatch.setattr("docx.Document", must_not_open)
    bomb = fixtures.make_docx_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    assert detect_type(bomb, "bomb.docx") == DOCX
    with pytest.raises(ParseError) as caught:
        parse(bomb, DOCX)
    assert caught.value.code == "docx_too_large"


def test_a_docx_part_with_a_bomb_like_ratio_fails_as_too_large():
    with pytest.raises(ParseError) as caught:
        parse(fixtures.make_docx_ratio_bomb(), DOCX)
    assert caught.value.code == "docx_too_large"
    assert "100x" in caught.value.message


def test_a_docx_with_too_many_parts_fails_as_too_large():
    with pytest.raises(ParseError) as caught:
        parse(fixtures.make_docx_with_many_entries(parsing.DOCX_MAX_ENTRIES), DOCX)
    assert caught.value.code == "docx_too_large"


@pytest.mark.parametrize(
    "data",
    [
        fixtures.make_truncated_docx(),
        fixtures.make_docx_with_broken_xml(),
        fixtures.make_docx_with_many_entries(0),  # a zip with no Word package around the part
        b"PK\x03\x04" + bytes(100),
    ],
)
def test_a_corrupt_docx_fails_as_corrupt(data):
    with pytest.raises(ParseError) as caught:
        parse(data, DOCX)
    assert caught.value.code == "docx_corrupt"


# --- parse: HTML --------------------------------------------------------------------------------


def test_html_keeps_visible_text_with_block_structure():
    text = parse(fixtures.HTML_PAGE, "text/html").text
    assert text == (
        "Release notes\n\n"
        "Version 2.0\n\n"
        "Faster search and a new editor.\n\n"
        "First item\nSecond item\n\n"
        "Plan | Price\nPro | 10\n\n"
        "def f():\n    return 1"
    )


@pytest.mark.parametrize(
    "hidden", ["tracked", "color: red", "build 1234", "Enable JavaScript", "hidden template"]
)
def test_html_drops_scripts_styles_comments_noscript_and_templates(hidden):
    assert hidden not in parse(fixtures.HTML_PAGE, "text/html").text


def test_html_of_only_scripts_fails_as_no_text():
    assert detect_type(fixtures.HTML_ONLY_SCRIPTS, "app.html") == "text/html"
    with pytest.raises(ParseError) as caught:
        parse(fixtures.HTML_ONLY_SCRIPTS, "text/html")
    assert caught.value.code == "no_text"


def test_html_line_breaks_are_kept():
    assert parse(b"<p>one<br>two <br> three</p>", "text/html").text == "one\ntwo\nthree"


def test_html_in_a_declared_legacy_charset_is_decoded_with_it():
    data = '<html><head><meta charset="iso-8859-1"></head><body>Café</body></html>'
    assert parse(data.encode("latin-1"), "text/html").text == "Café"


def test_html_entities_are_decoded():
    assert parse(b"<p>Fish &amp; chips &lt;3 &eacute;</p>", "text/html").text == "Fish & chips <3 é"


# --- parse: CSV and JSON ------------------------------------------------------------------------


def test_csv_rows_become_header_value_lines():
    text = parse(fixtures.CSV_DOCUMENT, "text/csv").text
    assert text.split("\n") == [
        'name: Ada, role: engineer, notes: likes "quoted" text, and commas',
        "name: Linus, notes: kernel",
        "name: Grace, role: admiral",
    ]


def test_csv_with_semicolons_is_read():
    assert parse(b"a;b\n1;2\n3;4\n", "text/csv").text == "a: 1, b: 2\na: 3, b: 4"


def test_csv_cells_beyond_the_header_are_named_by_position():
    assert parse(b"a,b\n1,2,3\n4\n", "text/csv").text == "a: 1, b: 2, column 3: 3\na: 4"


def test_csv_with_only_a_header_keeps_the_header():
    assert parse(b"name,email\n", "text/csv").text == "name, email"


def test_csv_with_a_field_over_the_csv_limit_falls_back_to_its_text():
    data = b"a,b\n1," + b"x" * 200_000 + b"\n"
    assert parse(data, "text/csv").text == data.decode().strip()


def test_csv_over_the_row_limit_fails_as_too_many_rows():
    data = b"n\n" + b"1\n" * (parsing.MAX_CSV_ROWS + 1)
    with pytest.raises(ParseError) as caught:
        parse(data, "text/csv")
    assert caught.value.code == "csv_too_many_rows"


def test_json_is_flattened_to_path_value_lines():
    assert parse(fixtures.JSON_DOCUMENT, "application/json").text.split("\n") == [
        "agent.name: triage",
        "agent.tools[0]: search",
        "agent.tools[1]: email",
        "limits.max_turns: 8",
        "limits.strict: true",
        "limits.budget: null",
        "tags: []",
    ]


def test_a_json_scalar_is_its_value():
    assert parse(b'"just a string"', "application/json").text == "just a string"


@pytest.mark.parametrize("data", [b'{"a": ', b"[" * 100_000 + b"]" * 100_000])
def test_invalid_or_too_deep_json_fails_as_invalid(data):
    with pytest.raises(ParseError) as caught:
        parse(data, "application/json")
    assert caught.value.code == "json_invalid"


def test_json_lone_surrogates_and_nuls_are_made_storable():
    text = parse(b'{"a": "x\\ud800y\\u0000z"}', "application/json").text
    assert text == "a: x?yz"
    text.encode("utf-8")


# --- parse: text and Markdown -------------------------------------------------------------------


def test_text_newlines_are_normalised_and_nuls_dropped():
    doc = parse(b"one\r\ntwo\rthree\n", "text/plain")
    assert doc.text == "one\ntwo\nthree"
    assert (doc.pages, doc.page_count, doc.char_count) == ([], 0, 13)


def test_markdown_is_kept_as_written():
    assert parse(b"# Title\n\n- item\n", "text/markdown").text == "# Title\n\n- item"


def test_utf16_text_with_a_bom_is_decoded():
    data = codecs.BOM_UTF16_BE + "Grüße\r\n".encode("utf-16-be")
    assert parse(data, "text/plain").text == "Grüße"


def test_windows_1252_text_is_decoded_as_windows_1252():
    text = "Caf\u00e9 \u2013 \u201cna\u00efve\u201d \u20ac5"  # é, en dash, curly quotes, euro
    assert parse(text.encode("cp1252"), "text/plain").text == text


@pytest.mark.parametrize(
    "data",
    [
        b"caf\xe9\x01",  # legacy bytes with a control character
        b"\x81\x8d\x8f",  # bytes Windows-1252 does not define
        fixtures.make_png(),
        "utf-16 without a BOM".encode("utf-16-le"),
    ],
)
def test_text_failing_the_decoding_policy_fails_as_not_utf8(data):
    with pytest.raises(ParseError) as caught:
        parse(data, "text/plain")
    assert caught.value.code == "text_not_utf8"


def test_whitespace_only_text_fails_as_no_text():
    with pytest.raises(ParseError) as caught:
        parse(b" \n\t\n", "text/plain")
    assert caught.value.code == "no_text"


def test_a_ten_megabyte_single_line_parses_quickly():
    started = time.perf_counter()
    doc = parse(fixtures.TEN_MB_LINE, "text/plain")
    assert doc.char_count == len(fixtures.TEN_MB_LINE.strip())
    assert "\n" not in doc.text
    html = parse(b"<p>" + fixtures.TEN_MB_LINE + b"</p>", "text/html")
    assert html.char_count == len(fixtures.TEN_MB_LINE.strip())
    assert time.perf_counter() - started < 5


def test_text_over_max_chars_fails_as_too_much_text():
    with pytest.raises(ParseError) as caught:
        parse(b"x" * 101, "text/plain", max_chars=100)
    assert caught.value.code == "too_much_text"
    assert parse(b"x" * 100, "text/plain", max_chars=100).char_count == 100


def test_max_chars_counts_the_normalised_text():
    assert parse(b"ab\r\ncd", "text/plain", max_chars=5).text == "ab\ncd"


# --- parse: the error contract ------------------------------------------------------------------


def test_parse_refuses_a_type_outside_the_allowed_list():
    with pytest.raises(ParseError) as caught:
        parse(fixtures.make_png(), "image/png")
    assert caught.value.code == "unsupported_media_type"


def test_parse_accepts_mime_parameters_and_case():
    assert parse(b"hi", "Text/Plain; charset=utf-8").text == "hi"


def test_a_parser_library_failure_becomes_parse_failed(monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("lxml.html.document_fromstring", broken)
    with pytest.raises(ParseError) as caught:
        parse(b"<p>x</p>", "text/html")
    assert caught.value.code == "parse_failed"
    assert isinstance(caught.value.__cause__, MemoryError)


@pytest.mark.parametrize("mime", list(ALLOWED_TYPES))
@pytest.mark.parametrize(
    "data",
    [fixtures.make_png(), fixtures.make_elf(), b"\xff\x00" * 50, fixtures.make_xlsx_like_zip()],
    ids=["png", "elf", "noise", "zip"],
)
def test_parse_raises_only_parse_error_on_garbage(mime, data):
    with pytest.raises(ParseError):
        parse(data, mime)
