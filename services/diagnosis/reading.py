"""Reading people's words: where a phrase is said, denied ("the price is not the issue") or conceded before a
"but" ("the price is fine, but nobody uses it"). Plain Python.

A phrase of the rules found in a text counts fully where it is asserted, half where it is conceded before a
contrast, and not at all where it is denied. Scope is the clause: sentences, and the parts of a sentence
around a contrast or a comma, so "no complaints about support, but the export keeps failing" denies support
and asserts the export.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

ASSERTED, CONCEDED, DENIED = 1.0, 0.5, 0.0

# A clause ends at a sentence's end, a semicolon, a comma or a dash; a contrast starts a new clause and concedes
# the one before it.
_BOUNDARY = re.compile(r"[.;!?\n]+|,|\s[-–—]\s|\(|\)")
_CONTRAST = re.compile(r"^\s*(but|however|yet|still|though|that said|having said that|except that)\b", re.IGNORECASE)
# A denial shortly before the phrase: "not", "no", "nothing (wrong with)", "isn't", "not about", ... A "not" after
# a verb's helper ("did not meet our needs", "could not set it up") says what went wrong, and denies nothing.
_HELPERS = ("do", "does", "did", "can", "could", "would", "will", "should", "has", "have", "had", "may", "might")
# A problem someone already put right ("you fixed the export bug") is no complaint, unless the fix is denied.
_RESOLVED = r"(?<!never )(?<!not )(?<!n't )(?<!n’t )\b(fixed|resolved|solved|sorted out|sorted)\b"
_DENIED_BEFORE = re.compile(
    r"(\b(no|nothing|nor|isn'?t|wasn'?t|aren'?t|weren'?t|ain'?t|never been)\b|"
    + _RESOLVED
    + "|"
    + "".join(f"(?<!\\b{helper} )" for helper in _HELPERS)
    + r"\bnot\b)(\W+\w+){0,4}\W*$",
    re.IGNORECASE,
)
# A denial or a good word right after it: "the price isn't the issue", "support has been great"; or a good word
# right after a phrase that ends in its own verb ("support was" + "great").
_GOOD = (
    r"(fine|ok|okay|great|good|lovely|reasonable|fair|excellent|brilliant|helpful|spot on|not a problem|"
    r"not an issue|no problem|no issue|worth it)\b"
)
_DENIED_AFTER = re.compile(
    r"^\W*((really|very|always|so|just|honestly|actually)\s+)?" + _GOOD + "|"
    r"^\W*(\w+\W+){0,2}?("
    r"(is|was|are|were|has been|have been|'s|’s|'re)\s+(really\s+|honestly\s+|actually\s+|just\s+|simply\s+)?"
    r"(not|never)\b"
    r"|(isn|wasn|aren|weren)'?t\b"
    r"|(is|was|are|were|has been|have been|got|gets|'s|’s)\s+(now\s+|since\s+|finally\s+|quickly\s+)?"
    r"(fixed|resolved|solved|sorted)\b"
    r"|(is|was|are|were|has been|have been|'s|’s|'re|seems?|seemed)\s+(\w+\s+)?" + _GOOD + ")",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Clause:
    start: int
    end: int
    weight: float  # ASSERTED, or CONCEDED when a contrast follows it


_INNER_CONTRAST = re.compile(r"\s(but|however|yet)\s", re.IGNORECASE)


_CONTRAST_ALONE = re.compile(r"^\s*(however|though|still|yet)\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.;!?\n]")


def _sentence_start(text: str, found: list[Clause], index: int) -> int:
    """The index of the first clause of the sentence holding clause ``index``."""
    while index > 0 and not _SENTENCE_END.search(text, found[index - 1].end, found[index].start):
        index -= 1
    return index


@lru_cache(maxsize=512)
def clauses(text: str) -> tuple[Clause, ...]:
    """The clauses of a text with how much what is said in them counts (cached: every phrase reads the same
    few texts)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        if boundary.start() > start:
            spans.append((start, boundary.start()))
        start = boundary.end()
    if start < len(text):
        spans.append((start, len(text)))
    found = [Clause(begin, end, ASSERTED) for begin, end in spans]
    for index in range(1, len(found)):
        said = text[found[index].start : found[index].end]
        if not _CONTRAST.match(said):
            continue
        conceded = index - 1
        if _CONTRAST_ALONE.match(said):
            # "The features are fine. The teachers, though, never wanted it": the contrast set aside between commas
            # concedes the sentence before, not the words it interrupts.
            conceded = _sentence_start(text, found, index) - 1
        if conceded >= 0:
            before = found[conceded]
            found[conceded] = Clause(before.start, before.end, CONCEDED)
    # "but" in the middle of a clause ("fine but slow") concedes what comes before it in that clause.
    split: list[Clause] = []
    for clause in found:
        inner = _INNER_CONTRAST.search(text, clause.start, clause.end)
        if inner is None:
            split.append(clause)
            continue
        middle = inner.start()
        split += [Clause(clause.start, middle, CONCEDED), Clause(middle, clause.end, clause.weight)]
    return tuple(split)


def _weight_at(text: str, match: re.Match[str], found: tuple[Clause, ...]) -> float:
    clause = next((c for c in found if c.start <= match.start() < c.end), Clause(0, len(text), ASSERTED))
    before = text[clause.start : match.start()]
    after = text[match.end() : clause.end]
    if _DENIED_BEFORE.search(before) or _DENIED_AFTER.match(after):
        return DENIED
    return clause.weight


def folded(text: str) -> str:
    """The text as the rules' patterns read it: lower case, every character where it was (the rules' patterns are
    written in lower case and matched case-sensitively, about three times cheaper than ignoring case)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)  # "İ" lowers to two characters


def readings(pattern: re.Pattern[str], text: str) -> Iterator[tuple[re.Match[str], float]]:
    """Every place ``pattern`` is found in ``text``, with how much it counts there. Places may overlap: in "the
    group loved it, but the CIO vetoed it" the phrase found from "group" (conceded) hides the one from "CIO"."""
    found: tuple[Clause, ...] | None = None
    position = 0
    while (match := pattern.search(text, position)) is not None:
        found = found or clauses(text)  # only a text that says the phrase is split into clauses
        yield match, _weight_at(text, match, found)
        position = match.start() + 1


def strongest(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str], float] | None:
    """The place where ``pattern`` counts most in ``text`` (the first of equals), or None when it is not found."""
    if pattern.search(text) is None:  # most phrases are not in most texts: no clauses, no generator
        return None
    best: tuple[re.Match[str], float] | None = None
    for match, weight in readings(pattern, text):
        if best is None or weight > best[1]:
            best = (match, weight)
    return best
