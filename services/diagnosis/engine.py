"""One diagnosis from the facts of a case: symptom, hypotheses, unknowns, tried, verdict. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.diagnosis.classifier import (
    SYMPTOMS,
    Answer,
    Clue,
    Scored,
    StatedReason,
    read_symptoms,
    score_root_causes,
)
from services.diagnosis.features import extract_features, notes_text
from services.diagnosis.learning import Learned, PlaybookChoice, choose_playbook
from services.diagnosis.rules import Question, Rules, load_rules
from services.diagnosis.verdict import Attempt, avoid_list, decide, exhausted_playbooks, priority

MAX_HYPOTHESES = 5


@dataclass(frozen=True)
class CaseFacts:
    """Everything known about one cancellation when it is diagnosed."""

    stated: StatedReason
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[Attempt] = field(default_factory=list)
    mrr_major: float | None = None
    effective_at: datetime | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    learned: Learned | None = None  # save rates of the confirmed cases; None: nothing learnt yet


@dataclass(frozen=True)
class Unknown:
    root_cause: str
    signals_to_check: list[str]
    questions: list[Question]


@dataclass(frozen=True)
class Finding:
    symptom: str
    hypotheses: list[Scored]
    unknowns: list[Unknown]
    tried: list[str]
    avoid: list[str]
    decision: str
    reason: str | None
    priority: int
    root_cause: str
    recommended_playbook: str
    playbook_choice: PlaybookChoice | None = None


ANSWERS = "answers"  # the signal group holding the answers to discovery questions, by question id


def answers_in(signals: dict[str, dict[str, Any]]) -> dict[str, Answer]:
    """The answers recorded for the account, by question id."""
    return {
        question_id: Answer(
            question_id=question_id,
            value=str(answer["value"]),
            answered_by=answer.get("answered_by"),
            answered_at=answer.get("answered_at"),
        )
        for question_id, answer in (signals.get(ANSWERS) or {}).items()
        if isinstance(answer, dict) and "value" in answer
    }


def _texts(facts: CaseFacts, rules: Rules, answers: dict[str, Answer]) -> list[tuple[str, str]]:
    """The words to read: the customer's, the reason code, relationship notes (also those written when completing
    a task) and free-text answers to discovery questions."""
    stated = facts.stated
    texts = []
    if stated.comment:
        texts.append(("comment", stated.comment))
    if stated.feedback and stated.feedback not in SYMPTOMS:
        texts.append(("reason_code", stated.feedback.replace("_", " ")))
    texts.extend(("relationship_note", note) for note in notes_text(facts.signals))
    texts.extend(("relationship_note", attempt.note) for attempt in facts.history if attempt.note)
    for answer in answers.values():
        asked = rules.question(answer.question_id)
        if asked is not None and not asked[1].choices:
            texts.append((f"answer.{answer.question_id}", answer.value))
    return texts


def unknowns_for(
    hypotheses: list[Scored], known: dict[str, Any], rules: Rules, answered: frozenset[str] = frozenset()
) -> list[Unknown]:
    """For each strong hypothesis, what would confirm or refute it and the questions not yet answered."""
    strong = [h for h in hypotheses if h.score > 0 and h.confidence >= rules.strong_confidence] or hypotheses[:2]
    unknowns = []
    for hypothesis in strong:
        cause = rules.root_causes[hypothesis.root_cause]
        unknowns.append(
            Unknown(
                root_cause=hypothesis.root_cause,
                signals_to_check=[signal for signal in cause.confirm if signal not in known],
                questions=[question for question in cause.questions if question.id not in answered],
            )
        )
    return unknowns


def score_case(facts: CaseFacts, rules: Rules) -> tuple[str, dict[str, Any], frozenset[str], list[Scored]]:
    """The symptom, the known facts, the questions answered, and every root cause scored, best first."""
    symptom, also_said = read_symptoms(facts.stated, rules)
    known = extract_features(facts.signals, now=facts.now)
    answers = answers_in(facts.signals)
    ranked = score_root_causes(
        symptom=symptom,
        texts=_texts(facts, rules, answers),
        facts=known,
        rules=rules,
        answers=answers,
        also_said=also_said,
    )
    return symptom, known, frozenset(answers), ranked


def diagnose_case(facts: CaseFacts, rules: Rules | None = None) -> Finding:
    """The whole diagnosis of one case, explained."""
    rules = rules or load_rules()
    symptom, known, answered, ranked = score_case(facts, rules)
    verdict = decide(ranked, history=facts.history, rules=rules)
    choice = None
    if facts.learned is not None and verdict.decision == "pursue" and verdict.root_cause == ranked[0].root_cause:
        choice = choose_playbook(
            root_cause=verdict.root_cause,
            default=verdict.playbook,
            fit=rules.root_causes[verdict.root_cause].fit_playbooks,
            learned=facts.learned,
            excluded=exhausted_playbooks(facts.history, rules),
        )
    days_left = (facts.effective_at - facts.now).total_seconds() / 86400 if facts.effective_at else None
    hypotheses = [h for h in ranked[:MAX_HYPOTHESES] if h.score > 0] or [
        Scored(ranked[0].root_cause, 0.0, 0.0, (Clue("stated_reason", "nothing points anywhere yet", 0.0),))
    ]
    return Finding(
        symptom=symptom,
        hypotheses=hypotheses,
        unknowns=unknowns_for(hypotheses, known, rules, answered),
        tried=[f"{a.action}: {a.result}" for a in facts.history],
        avoid=avoid_list(facts.history, rules),
        decision=verdict.decision,
        reason=verdict.reason,
        priority=priority(
            decision=verdict.decision,
            mrr_major=facts.mrr_major,
            icp_fit=known.get("company.icp_fit"),
            days_left=days_left,
            rules=rules.priority,
        ),
        root_cause=ranked[0].root_cause,
        recommended_playbook=choice.playbook if choice else verdict.playbook,
        playbook_choice=choice,
    )
