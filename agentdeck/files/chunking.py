"""Split a parsed file's text into overlapping token windows.

Sizes are counted in the MiniLM word-piece vocabulary (``embeddings.tokenize``): it ships with
the wheel, so counting needs no download (tiktoken's vocabularies are fetched from the
internet on first use). Defaults match OpenAI's vector stores: 800 tokens, 400 overlap.
Chunks are exact substrings of the text, cut at token boundaries, and know their page.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from agentdeck.files.embeddings import Tokens, tokenize

_MAX_WORD_PIECES = 32


@dataclass(frozen=True)
class ChunkSpec:
    position: int
    text: str
    token_count: int
    char_start: int
    char_end: int
    page: int | None


def chunk_text(
    text: str,
    *,
    size: int = 800,
    overlap: int = 400,
    page_offsets: Sequence[Sequence[int]] = (),
    tokens: Tokens | None = None,
) -> list[ChunkSpec]:
    """Windows of at most ``size`` tokens starting about every ``size - overlap`` tokens, both
    ends moved back to a word boundary; the last window ends at the text's end. ``page_offsets`` are ``(page number, first character)`` pairs in order."""
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and below size")
    offsets = (tokens or tokenize(text)).offsets
    if not offsets:
        return []
    starts = [int(p[1]) for p in page_offsets]
    numbers = [int(p[0]) for p in page_offsets]

    def page_of(char: int) -> int | None:
        if not starts:
            return None
        return numbers[max(bisect.bisect_right(starts, char) - 1, 0)]

    step = size - overlap
    chunks: list[ChunkSpec] = []
    n = len(offsets)

    def word_start(i: int) -> int:
        """Move ``i`` back to the first piece of its word (a piece that touches the previous
        one continues it), so no chunk starts or ends inside a word; a "word" longer than
        ``_MAX_WORD_PIECES`` (a URL, a hash) is cut where it is."""
        j = i
        while j > 0 and i - j < _MAX_WORD_PIECES and offsets[j][0] == offsets[j - 1][1]:
            j -= 1
        return j if j == 0 or offsets[j][0] != offsets[j - 1][1] else i

    begin = 0
    while True:
        end = min(begin + size, n)
        if end < n:
            snapped = word_start(end)
            if snapped > begin:
                end = snapped
        char_start, char_end = offsets[begin][0], offsets[end - 1][1]
        chunks.append(
            ChunkSpec(
                position=len(chunks),
                text=text[char_start:char_end],
                token_count=end - begin,
                char_start=char_start,
                char_end=char_end,
                page=page_of(char_start),
            )
        )
        if end >= n:
            return chunks
        nxt = word_start(begin + step)
        # Always advance, even past a snapped boundary.
        begin = nxt if nxt > begin else begin + step
