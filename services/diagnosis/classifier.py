"""Symptom and ranked root causes from what the customer said and what the account shows. Plain Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.diagnosis.reading import ASSERTED, DENIED, folded, strongest
from services.diagnosis.rules import Phrase, Question, Rules
from services.diagnosis.taxonomy import ROOT_CAUSES, SYMPTOMS

__all__ = [
    "ROOT_CAUSES",
    "SYMPTOMS",
    "Answer",
    "Clue",
    "Scored",
    "StatedReason",
    "normalise_symptom",
    "read_symptoms",
    "score_root_causes",
]


@dataclass(frozen=True)
class Clue:
    """One piece of evidence: which signal or phrase, what it says, how much it weighed."""

    signal: str
    detail: str
    weight: float


@dataclass(frozen=True)
class Scored:
    root_cause: str
    score: float
    confidence: float
    evidence: tuple[Clue, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StatedReason:
    source: str | None = None
    billing_reason: str | None = None
    feedback: str | None = None
    comment: str | None = None
    involuntary: bool = False


@dataclass(frozen=True)
class Answer:
    """Someone's answer to a discovery question: a choice of the question's, or free text."""

    question_id: str
    value: str
    answered_by: str | None = None
    answered_at: str | None = None


# Another symptom said in the same words weighs this much of the main one's weight: each reason counts.
ALSO_SAID = 0.5


def _words(code: str) -> str:
    return re.sub(r"[_\-]+", " ", code).strip().lower()


def _symptoms_in(text: str, rules: Rules) -> list[tuple[str, float]]:
    """The symptoms said in ``text`` (in the rules' order), each with how much it counts where it is said most;
    denied ones ("not the price") are left out."""
    said: list[tuple[str, float]] = []
    if not text:  # most cancellations carry a Stripe code and no words: nothing to search every phrase for
        return said
    text = folded(text)
    for symptom, patterns in rules.symptom_phrases:
        weights = [found[1] for pattern in patterns if (found := strongest(pattern, text))]
        if weights and max(weights) > DENIED:
            said.append((symptom, max(weights)))
    return said


def read_symptoms(stated: StatedReason, rules: Rules) -> tuple[str, tuple[str, ...]]:
    """The symptom (the billing system's failure first, then a Stripe code, then what the reason code or the
    comment asserts most), and the other symptoms the customer mentioned in the same words."""
    feedback = (stated.feedback or "").strip()
    said: list[tuple[str, float]] = []
    for text in (_words(feedback) if feedback not in SYMPTOMS else "", stated.comment or ""):
        said += [(symptom, weight) for symptom, weight in _symptoms_in(text, rules) if symptom not in dict(said)]
    if stated.involuntary or rules.billing_reasons.get(stated.billing_reason or "") == "payment_failed":
        symptom = "payment_failed"
    elif feedback in SYMPTOMS and feedback not in ("other", "unknown"):
        symptom = feedback  # Stripe's codes are symptoms already
    elif said:
        symptom = max(said, key=lambda pair: pair[1])[0]  # the first of the most asserted
    else:
        symptom = "other" if (feedback or stated.comment) else "unknown"
    return symptom, tuple(name for name, _ in said if name != symptom)


def normalise_symptom(stated: StatedReason, rules: Rules) -> str:
    """The symptom the customer's stated reason reads as."""
    return read_symptoms(stated, rules)[0]


def score_root_causes(
    *,
    symptom: str,
    texts: list[tuple[str, str]],
    facts: dict[str, Any],
    rules: Rules,
    answers: dict[str, Answer] | None = None,
    also_said: tuple[str, ...] = (),
) -> list[Scored]:
    """Every root cause scored from the symptom (and, at half weight, the other symptoms said in the same words),
    the phrases in the texts (as said, conceded or denied), the known facts and the answers to its questions,
    best first."""
    answers = answers or {}
    texts = [(label, folded(text)) for label, text in texts]
    raw: list[tuple[str, float, list[Clue]]] = []
    for name, cause in rules.root_causes.items():
        clues: list[Clue] = []
        if weight := cause.symptoms.get(symptom):
            clues.append(Clue("symptom", f"the customer's reason reads as {symptom!r}", weight))
        for other in also_said:
            if weight := cause.symptoms.get(other):
                clues.append(Clue("symptom", f"the customer also mentioned {other!r}", round(weight * ALSO_SAID, 3)))
        if texts:
            clues.extend(filter(None, (_phrase_clue(phrase, texts) for phrase in cause.phrases)))
        for condition in cause.signals:
            if condition.signal in facts and condition.holds(facts[condition.signal]):
                clues.append(
                    Clue(condition.signal, f"{condition.says} ({_show(facts[condition.signal])})", condition.weight)
                )
        clues.extend(_answered(cause.questions, answers))
        raw.append((name, round(sum(clue.weight for clue in clues), 3), clues))
    # What is not yet known counts as one more, unnamed cause: thin evidence never looks certain.
    positive = sum(max(score, 0.0) for _, score, _ in raw) + rules.discover_below
    ranked = [
        Scored(
            root_cause=name,
            score=score,
            confidence=round(max(score, 0.0) / positive, 3),
            evidence=tuple(sorted(clues, key=lambda clue: -abs(clue.weight))),
        )
        for name, score, clues in raw
    ]
    # Ties fall to the order of the rules file, which lists the more common causes first.
    return sorted(ranked, key=lambda scored: -scored.score)


def _phrase_clue(phrase: Phrase, texts: list[tuple[str, str]]) -> Clue | None:
    """The phrase where it counts most among the texts: asserted fully, conceded before a "but" at half weight,
    denied not at all."""
    best: tuple[str, re.Match[str], float] | None = None
    for label, text in texts:
        found = strongest(phrase.pattern, text)
        if found and found[1] > DENIED and (best is None or found[1] > best[2]):
            best = (label, *found)
    if best is None:
        return None
    label, match, weight = best
    conceded = " (conceded before a contrast)" if weight < ASSERTED else ""
    return Clue(label, f"{label} says {match.group(0)!r}{conceded}", round(phrase.weight * weight, 3))


def _answered(questions: tuple[Question, ...], answers: dict[str, Answer]) -> list[Clue]:
    """The weight of each answer given to one of these questions, by the choice it names."""
    clues = []
    for question in questions:
        answer = answers.get(question.id)
        choice = question.choice(answer.value) if answer else None
        if answer and choice and (weight := question.choices[choice]):
            said = f" ({answer.answered_by})" if answer.answered_by else ""
            clues.append(Clue(f"answer.{question.id}", f"{question.text} {choice!r}{said}", weight))
    return clues


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value).lower() if isinstance(value, bool) else str(value)
