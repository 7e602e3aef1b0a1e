"""Text decoding, shared by detection and parsing so a file accepted at upload decodes the same way
at processing; and the parser of plain text and Markdown. The policy:

1. A byte order mark wins: UTF-8, UTF-16 or UTF-32 (LE/BE). UTF-16/32 without a BOM is binary.
2. Otherwise any NUL byte means binary.
3. Strict UTF-8, accepted unless more than 1% of the characters are control characters.
4. Otherwise the charset an HTML ``<meta>`` declares, then Windows-1252 (what browsers use for
   ISO-8859-1 too), accepted only if the result holds no control character at all (tab, newlines,
   form feed and ESC excepted): legacy 8-bit text, never binary that happens to decode.

What fails the policy is rejected at upload (``unsupported_media_type``) and fails parsing with
``text_not_utf8``.
"""

from __future__ import annotations

import codecs
import re

from agentdeck.files.exceptions import ParseError

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


def html_declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET_RE.search(data[:4096])
    if not match:
        return None
    try:
        name = codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None
    # UTF-16/32 need a BOM (rule 1); UTF-8 was already tried; UTF-7 hides markup from filters.
    return None if name.startswith(("utf-16", "utf-32", "utf-8", "utf-7")) else name


def decode_text(data: bytes, fallback: str | None = None) -> str | None:
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
    for candidate in (fallback, "cp1252"):
        if candidate is None:
            continue
        try:
            text = data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
        return None if _CONTROL_RE.search(text) else text
    return None


def _controls(text: str) -> int:
    return len(_CONTROL_RE.findall(text))


def decoded(data: bytes) -> str:
    """The text of a file being parsed, or ``text_not_utf8`` when the policy says binary."""
    text = decode_text(data, html_declared_charset(data))
    if text is None:
        raise ParseError(
            "text_not_utf8",
            "The text is neither UTF-8, UTF-16/32 with a byte order mark, nor clean Windows-1252.",
        )
    return text


def parse_text(data: bytes, max_chars: int) -> list[str]:
    return [decoded(data)]
