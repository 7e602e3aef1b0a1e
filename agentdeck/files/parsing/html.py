"""HTML: the visible text (lxml), whitespace collapsed as a browser would, blocks on their own
lines, ``<pre>`` kept as written; scripts, styles and embedded objects dropped."""

from __future__ import annotations

import re

from agentdeck.files.parsing.text import decoded

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


def parse_html(data: bytes, max_chars: int) -> list[str]:
    from lxml import etree
    from lxml import html as lxml_html

    text = decoded(data)
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
