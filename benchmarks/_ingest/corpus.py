"""The corpus: English-like documents from a word-level Markov chain over Python's documentation."""

from __future__ import annotations

import collections
import random
import re

from .config import DOC_BYTES


def build_corpus(megabytes: float, seed: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of documents totalling ``megabytes``, from an order-2 word Markov
    chain over Python's documentation."""
    import pydoc_data.topics

    source = "\n".join(pydoc_data.topics.topics.values())
    words = re.findall(r"[A-Za-z][A-Za-z'-]*|\d+|[.,;:?!()]", source)
    chain: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for a, b, c in zip(words, words[1:], words[2:], strict=False):
        chain[(a, b)].append(c)
    keys = [k for k in chain if k[0] == "."]  # sentence starts
    rng = random.Random(seed)  # noqa: S311 (text generation, not cryptography)
    total = int(megabytes * 1024 * 1024)
    docs: list[tuple[str, bytes]] = []
    n = 0
    while sum(len(d) for _, d in docs) < total:
        target = min(DOC_BYTES, total - sum(len(d) for _, d in docs))
        markdown = n % 2 == 1
        title = f"Document {n + 1}: notes on " + " ".join(rng.sample(words[:5000], 3))
        parts = [f"# {title}\n\n" if markdown else f"{title}\n\n"]
        size = len(parts[0])
        paragraphs = 0
        while size < target:
            paragraph = _paragraph(rng, chain, keys)
            paragraphs += 1
            if markdown and paragraphs % 5 == 0:
                heading = f"## {' '.join(rng.sample(words[:5000], 2)).capitalize()}\n\n"
                parts.append(heading)
                size += len(heading)
            parts.append(paragraph + "\n\n")
            size += len(paragraph) + 2
        name = f"doc-{n + 1:02d}.{'md' if markdown else 'txt'}"
        docs.append((name, "".join(parts).strip().encode()))
        n += 1
    return docs


def _paragraph(rng: random.Random, chain: dict, keys: list[tuple[str, str]]) -> str:
    out: list[str] = []
    for _ in range(rng.randint(3, 8)):
        a, b = rng.choice(keys)
        sentence = [b.capitalize()]
        for _ in range(60):
            nxt = chain.get((a, b))
            if not nxt:
                break
            c = rng.choice(nxt)
            if c == ".":
                break
            sentence.append(c)
            a, b = b, c
        text = " ".join(sentence)
        text = re.sub(r" ([.,;:?!)])", r"\1", text).replace("( ", "(")
        out.append(text + ".")
    return " ".join(out)
