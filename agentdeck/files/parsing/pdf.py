"""PDF: the text of each page (pypdf), one segment per page so chunks can cite their page."""

from __future__ import annotations

import io

from agentdeck.files.exceptions import ParseError
from agentdeck.files.parsing.base import too_much_text


def parse_pdf(data: bytes, max_chars: int) -> list[str]:
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
            raise too_much_text(max_chars)
        texts.append(page_text)
    if pages and failed == len(pages):
        raise ParseError("pdf_corrupt", "No page of the PDF could be read.")
    return texts
