"""The text model: English words in topics and phrases, chunk texts made of them, and the queries."""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from typing import Any

from .config import (
    COMMON_PHRASES,
    COMMON_WORDS,
    DIMENSIONS,
    PHRASES_PER_TOPIC,
    TOPIC_WORDS,
    TOPICS_PER_INDEX,
    vector_literal,
)


@dataclass
class TextModel:
    """Words and topics, built deterministically from the seed (the same in every process)."""

    common: list[str]
    common_p: Any  # numpy array of probabilities
    content: list[str]
    topics: list[list[str]]  # each: TOPIC_WORDS words
    topic_p: Any
    index_topics: list[list[int]]
    # Phrases (2-4 words): each topic's PHRASES_PER_TOPIC made of its words, and COMMON_PHRASES
    # of common words; both drawn Zipf-weighted by position (phrase_p, common_phrase_p).
    topic_phrases: list[list[list[str]]]
    phrase_p: Any
    common_phrases: list[list[str]]
    common_phrase_p: Any


def build_text_model(seed: int, n_indices: int) -> TextModel:
    import pydoc_data.topics

    import numpy as np

    text = " ".join(pydoc_data.topics.topics.values()).lower()
    counts = collections.Counter(re.findall(r"[a-z]+", text))
    ranked = [w for w, _ in counts.most_common()]
    common = ranked[:COMMON_WORDS]
    common_p = np.array([counts[w] for w in common], dtype=float)
    content = sorted(w for w in ranked[COMMON_WORDS:] if len(w) >= 4 and counts[w] >= 2)
    rng = np.random.default_rng(seed)
    n_topics = max(2 * n_indices, TOPICS_PER_INDEX + 1)
    topics = [
        [content[i] for i in rng.choice(len(content), TOPIC_WORDS, replace=False)]
        for _ in range(n_topics)
    ]
    zipf = 1.0 / np.arange(1, TOPIC_WORDS + 1)
    index_topics = [
        sorted(int(t) for t in rng.choice(n_topics, TOPICS_PER_INDEX, replace=False))
        for _ in range(n_indices)
    ]
    common_p = common_p / common_p.sum()
    topic_p = zipf / zipf.sum()

    def phrase(words: list[str], p: Any) -> list[str]:
        return [words[int(i)] for i in rng.choice(len(words), int(rng.integers(2, 5)), p=p)]

    topic_phrases = [[phrase(t, topic_p) for _ in range(PHRASES_PER_TOPIC)] for t in topics]
    common_phrases = [phrase(common, common_p) for _ in range(COMMON_PHRASES)]
    pz = 1.0 / np.arange(1, PHRASES_PER_TOPIC + 1)
    cz = 1.0 / np.arange(1, COMMON_PHRASES + 1)
    return TextModel(
        common=common,
        common_p=common_p,
        content=content,
        topics=topics,
        topic_p=topic_p,
        index_topics=index_topics,
        topic_phrases=topic_phrases,
        phrase_p=pz / pz.sum(),
        common_phrases=common_phrases,
        common_phrase_p=cz / cz.sum(),
    )


def make_words(rng: Any, model: TextModel, topics: list[int], n: int) -> list[str]:
    """About ``n`` words as a sequence of phrases: ~40% common phrases, ~52% phrases of the
    given topics, ~8% phrases of any topic (noise). Phrases, not independent words, so that
    word pairs (the hash embedder's other features) recur within a topic as they do in real
    text; independent words would make every pair unique and the vectors mostly noise."""
    out: list[str] = []
    m = n // 2 + 8  # phrases are 3 words on average: enough draws
    kinds = rng.random(m)
    common = rng.choice(COMMON_PHRASES, m, p=model.common_phrase_p)
    topic_of = rng.choice(topics, m)
    any_topic = rng.integers(0, len(model.topics), m)
    phrase_no = rng.choice(PHRASES_PER_TOPIC, m, p=model.phrase_p)
    i = 0
    while len(out) < n:
        if kinds[i % m] < 0.40:
            out.extend(model.common_phrases[common[i % m]])
        elif kinds[i % m] < 0.92:
            out.extend(model.topic_phrases[topic_of[i % m]][phrase_no[i % m]])
        else:
            out.extend(model.topic_phrases[any_topic[i % m]][phrase_no[i % m]])
        i += 1
    return out[:n]


def make_prose(rng: Any, words: list[str]) -> str:
    """Sentences of 8-20 words, capitalised, full stops; paragraphs every ~6 sentences."""
    out, i, sentences = [], 0, 0
    while i < len(words):
        n = int(rng.integers(8, 21))
        sentence = words[i : i + n]
        i += n
        sentences += 1
        out.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + ".")
        out.append("\n\n" if sentences % 6 == 0 else " ")
    return "".join(out).strip()


@dataclass
class Query:
    index_no: int
    kind: str  # in-topic | off-topic
    text: str
    literal: str = ""
    truth: list[int] = field(default_factory=list)  # exact top-k ids
    truth_distances: list[float] = field(default_factory=list)
    tie_at_k: bool = False  # the k-th and (k+1)-th exact distances are equal


def make_queries(model: TextModel, n: int, n_indices: int, off_topic: float, seed: int):
    import numpy as np

    from agentdeck.files.embeddings import HashEmbedder

    rng = np.random.default_rng([seed, 7919])
    embedder = HashEmbedder(DIMENSIONS)
    queries = []
    for _ in range(n):
        index_no = int(rng.integers(0, n_indices))
        own = model.index_topics[index_no]
        if rng.random() < off_topic:
            kind = "off-topic"
            others = [t for t in range(len(model.topics)) if t not in own]
            topic = int(rng.choice(others))
        else:
            kind = "in-topic"
            topic = int(rng.choice(own))
        # 2-3 of the topic's phrases (a word dropped from some), maybe one common phrase.
        phrases = [
            list(model.topic_phrases[topic][int(rng.choice(PHRASES_PER_TOPIC, p=model.phrase_p))])
            for _ in range(int(rng.integers(2, 4)))
        ]
        for ph in phrases:
            if len(ph) > 2 and rng.random() < 0.3:
                del ph[int(rng.integers(0, len(ph)))]
        if rng.random() < 0.5:
            phrases.insert(
                int(rng.integers(0, len(phrases) + 1)),
                model.common_phrases[int(rng.choice(COMMON_PHRASES, p=model.common_phrase_p))],
            )
        text = " ".join(w for ph in phrases for w in ph)
        queries.append(Query(index_no, kind, text, vector_literal(embedder.embed([text])[0])))
    return queries
