"""Symptom and ranked root causes from what the customer said and what the account shows. Plain Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.diagnosis.rules import Question, Rules
from services.diagnosis.taxonomy import ROOT_CAUSES, SYMPTOMS

__all__ = [
    "ROOT_CAUSES",
    "SYMPTOMS",
    "Answer",
    "Clue",
    "Scored",
    "StatedReason",
    "normalise_symptom",
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


def _words(code: str) -> str:
    return re.sub(r"[_\-]+", " ", code).strip().lower()


def _first_symptom_in(text: str, rules: Rules) -> str | None:
    for symptom, patterns in rules.symptom_phrases:
        if any(pattern.search(text) for pattern in patterns):
            return symptom
    return None


def normalise_symptom(stated: StatedReason, rules: Rules) -> str:
    """The symptom: the billing system's failure first, then a Stripe code, then the reason code or comment."""
    if stated.involuntary or rules.billing_reasons.get(stated.billing_reason or "") == "payment_failed":
        return "payment_failed"
    feedback = (stated.feedback or "").strip()
    if feedback in rules.stripe_feedback and feedback != "other":
        return feedback
    if feedback in SYMPTOMS and feedback not in ("other", "unknown"):
        return feedback
    for text in (_words(feedback), stated.comment or ""):
        if text and (found := _first_symptom_in(text, rules)):
            return found
    return "other" if (feedback or stated.comment) else "unknown"


def score_root_causes(
    *,
    symptom: str,
    texts: list[tuple[str, str]],
    facts: dict[str, Any],
    rules: Rules,
    answers: dict[str, Answer] | None = None,
) -> list[Scored]:
    """Every root cause scored from the symptom, phrases in the texts, the known facts and the answers to its
    questions, best first."""
    answers = answers or {}
    raw: list[tuple[str, float, list[Clue]]] = []
    for name, cause in rules.root_causes.items():
        clues: list[Clue] = []
        if weight := cause.symptoms.get(symptom):
            clues.append(Clue("symptom", f"the customer's reason reads as {symptom!r}", weight))
        for phrase in cause.phrases:
            for label, text in texts:
                if found := phrase.pattern.search(text):
                    clues.append(Clue(label, f"{label} says {found.group(0)!r}", phrase.weight))
                    break
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
