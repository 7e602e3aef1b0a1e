"""Personal data in text: e-mail addresses, phone numbers and payment card numbers, found,
masked for a ``guardrail.tripped`` detail, or redacted.

Phone and card detection errs against false positives: dates, IPv4 addresses, decimals, amounts
and plain runs of digits are not phone numbers; a card number must pass the Luhn check."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PII_KINDS = ("email", "phone", "card")

_EMAIL_RE = re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])")
# Candidates only; _is_phone decides. Separators are single spaces, dashes or dots.
_PHONE_RE = re.compile(
    r"(?<![\w+])(?P<plus>\+ ?)?(?:\d{1,4}[ .-]?)?(?P<area>\(\d{1,5}\)[ .-]?)?"
    r"\d{1,15}(?:[ .-]\d{1,15})*(?!\w)"
)
_CARD_RE = re.compile(r"(?<!\w)\d(?:[ -]?\d){12,18}(?!\w)")
_DATE_RES = (
    re.compile(r"(\d{4})[-./ ](\d{1,2})[-./ ](\d{1,2})"),
    re.compile(r"(\d{1,2})[-./ ](\d{1,2})[-./ ](\d{4})"),
)
_IPV4_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:\.\d{3})+|\d{1,3}(?: \d{3})+")
_REDACTION_LABELS = {kind: f"[redacted {kind}]" for kind in PII_KINDS}


@dataclass(frozen=True)
class PIIMatch:
    kind: str
    start: int
    end: int
    value: str


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _looks_like_date(text: str) -> bool:
    for pattern in _DATE_RES:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        a, b, c = (int(x) for x in m.groups())
        if pattern is _DATE_RES[0]:
            year, month, day = a, b, c
        else:  # day-first or month-first
            year, month, day = c, min(a, b), max(a, b)
        if 1000 <= year <= 2999 and 1 <= month <= 12 and 1 <= day <= 31:
            return True
    return False


def _is_phone(match: re.Match[str]) -> bool:
    text = match.group(0)
    groups = re.findall(r"\d+", text)
    if not 7 <= sum(len(g) for g in groups) <= 15:
        return False
    if match.group("plus"):
        return True
    if len(groups) < 2:
        return False  # a plain run of digits: an ID or an amount more often than a phone
    if any(len(g) > 4 for g in groups[:-1]) or len(groups[-1]) > 8:
        return False
    if not match.group("area"):
        separators = set(re.findall(r"[ .-]", text))
        if "." in separators and (separators != {"."} or len(groups) == 2):
            return False  # "12.5-13.75", a decimal
        if _looks_like_date(text) or _IPV4_RE.fullmatch(text) or _THOUSANDS_RE.fullmatch(text):
            return False
    return True


def find_pii(text: str, kinds: Sequence[str] = PII_KINDS) -> list[PIIMatch]:
    """Non-overlapping PII matches of the given kinds, in order of position. A span found as a
    card is not also reported as a phone number."""
    found: list[PIIMatch] = []
    if "card" in kinds:
        for m in _CARD_RE.finditer(text):
            if _luhn_ok(re.sub(r"\D", "", m.group(0))):
                found.append(PIIMatch("card", m.start(), m.end(), m.group(0)))
    if "email" in kinds:
        found.extend(
            PIIMatch("email", m.start(), m.end(), m.group(0)) for m in _EMAIL_RE.finditer(text)
        )
    if "phone" in kinds:
        found.extend(
            PIIMatch("phone", m.start(), m.end(), m.group(0))
            for m in _PHONE_RE.finditer(text)
            if _is_phone(m)
        )
    priority = {"card": 0, "email": 1, "phone": 2}
    found.sort(key=lambda m: (m.start, priority[m.kind], -m.end))
    result: list[PIIMatch] = []
    for match in found:
        if result and match.start < result[-1].end:
            continue
        result.append(match)
    return result


def redact_text(text: str, kinds: Sequence[str] = PII_KINDS) -> str:
    """``text`` with each PII match replaced by ``[redacted <kind>]``."""
    matches = find_pii(text, kinds)
    if not matches:
        return text
    parts: list[str] = []
    position = 0
    for m in matches:
        parts.append(text[position : m.start])
        parts.append(_REDACTION_LABELS[m.kind])
        position = m.end
    parts.append(text[position:])
    return "".join(parts)


def mask_pii(match: PIIMatch) -> str:
    digits = re.sub(r"\D", "", match.value)
    if match.kind == "card":
        return f"card ending {digits[-4:]}"
    if match.kind == "phone":
        return f"phone ending {digits[-2:]}"
    local, _, domain = match.value.partition("@")
    return f"email {local[:1]}***@{domain}"
