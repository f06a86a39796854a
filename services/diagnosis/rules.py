"""The diagnosis rules, read from a YAML file a customer-success lead can tune. Plain Python."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from services.diagnosis.features import FEATURE_NAMES
from services.diagnosis.reading import folded
from services.diagnosis.taxonomy import ROOT_CAUSES, SYMPTOMS
from shared.moves import MOVES

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")
CONDITION_KINDS = ("is", "below", "above", "equals")


class RulesError(ValueError):
    """The rules file is not usable; the message says where."""


@dataclass(frozen=True)
class Phrase:
    pattern: re.Pattern[str]
    weight: float

    @property
    def text(self) -> str:
        return self.pattern.pattern


@dataclass(frozen=True)
class Condition:
    signal: str
    kind: str
    value: Any
    weight: float
    says: str

    def holds(self, observed: Any) -> bool:
        """Whether a known signal value meets the condition."""
        if self.kind == "is":
            return bool(observed) is bool(self.value)
        if self.kind == "equals":
            return observed == self.value
        if isinstance(observed, bool) or not isinstance(observed, (int, float)):
            return False
        return observed < self.value if self.kind == "below" else observed > self.value


@dataclass(frozen=True)
class Question:
    """A discovery question: its id (what answers name), the words to ask, and the choices with their weight on
    the cause that asks it (none: a free-text answer)."""

    id: str
    text: str
    choices: dict[str, float] = field(default_factory=dict)

    def choice(self, value: str) -> str | None:
        """The choice ``value`` names (case and surrounding spaces aside), or None."""
        wanted = value.strip().lower()
        return next((choice for choice in self.choices if choice.lower() == wanted), None)


@dataclass(frozen=True)
class RootCauseRules:
    name: str
    label: str
    symptoms: dict[str, float]
    phrases: tuple[Phrase, ...]
    signals: tuple[Condition, ...]
    confirm: tuple[str, ...]
    questions: tuple[Question, ...]
    playbook_moves: tuple[str, ...]
    # Other root causes' playbooks that also fit this one: what learning from outcomes may switch to.
    fit_playbooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class PriorityRules:
    full_revenue_at: float = 5000
    default_fit: float = 60
    weights: dict[str, float] = field(default_factory=lambda: {"revenue": 0.45, "fit": 0.3, "urgency": 0.25})
    relaxed_days: float = 60


@dataclass(frozen=True)
class Rules:
    stripe_feedback: frozenset[str]
    billing_reasons: dict[str, str]
    symptom_phrases: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]
    root_causes: dict[str, RootCauseRules]
    discover_below: float
    strong_confidence: float
    clear_clue: float
    clear_lead: float
    failed_results: frozenset[str]
    move_on: dict[str, str]
    move_on_after_failed_attempt: dict[str, str]
    priority: PriorityRules

    def reads_anything_in(self, text: str) -> bool:
        """Whether any root cause's phrase is found in ``text`` (a note worth diagnosing again for)."""
        words = folded(text)
        return any(phrase.pattern.search(words) for cause in self.root_causes.values() for phrase in cause.phrases)

    def question(self, question_id: str) -> tuple[str, Question] | None:
        """The root cause asking the question with this id, and the question; None for an unknown id."""
        for name, cause in self.root_causes.items():
            for question in cause.questions:
                if question.id == question_id:
                    return name, question
        return None


# A word list named in a pattern: `{departure}`. Quantifiers (`{0,40}`) are digits, never a name.
WORD_LIST = re.compile(r"\{([a-z][a-z_]*)\}")


def _word_lists(raw: Any) -> dict[str, str]:
    """The rules' named word lists, each as one group of alternatives a pattern can name."""
    if not isinstance(raw, dict):
        raise RulesError(f"words: a mapping of each list's name to its words, not {raw!r}")
    lists = {}
    for name, words in raw.items():
        where = f"words.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z_]*", name):
            raise RulesError(f"{where}: a list's name is lower case letters and _")
        if not isinstance(words, list) or not words or not all(isinstance(word, str) and word for word in words):
            raise RulesError(f"{where}: a list of words (regular expressions), not {words!r}")
        # A word starts where a word starts: "hanging" is not read inside "changing".
        lists[name] = _compile(r"\b(?:" + "|".join(words) + ")", where, {}).pattern
    return lists


# An upper-case letter that is not an escape (\\W, \\S, \\B stay as they are).
_UPPER_CASE = re.compile(r"(?<!\\)[A-Z]")


def _compile(pattern: str, where: str, words: dict[str, str]) -> re.Pattern[str]:
    """A pattern matched case-sensitively against lower-cased words (see reading.folded): written in lower case."""
    if _UPPER_CASE.search(pattern):
        raise RulesError(f"{where}: write the pattern {pattern!r} in lower case (words are read in lower case)")

    def named(found: re.Match[str]) -> str:
        if found.group(1) not in words:
            known = ", ".join(sorted(words)) or "none"
            raise RulesError(
                f"{where}: the pattern {pattern!r} names no word list {{{found.group(1)}}} (known: {known})"
            )
        return words[found.group(1)]

    try:
        return re.compile(WORD_LIST.sub(named, pattern))
    except re.error as error:
        raise RulesError(f"{where}: the pattern {pattern!r} is not a valid regular expression ({error})") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RulesError(f"{where}: {value!r} is not a number")
    return float(value)


def _known_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    if unknown := set(raw) - allowed:
        # Usually an unquoted comma in a YAML flow mapping: `says: a, b` splits into two keys.
        raise RulesError(f"{where}: unknown key(s) {sorted(map(str, unknown))} in {raw!r}; quote text with commas")


def _condition(raw: dict[str, Any], where: str) -> Condition:
    _known_keys(raw, {"signal", "weight", "says", *CONDITION_KINDS}, where)
    if raw.get("signal") not in FEATURE_NAMES:
        raise RulesError(f"{where}: unknown signal {raw.get('signal')!r}; known: {', '.join(FEATURE_NAMES)}")
    kinds = [kind for kind in CONDITION_KINDS if kind in raw]
    if len(kinds) != 1 or "signal" not in raw or "weight" not in raw:
        raise RulesError(f"{where}: a signal rule needs `signal`, `weight` and one of {', '.join(CONDITION_KINDS)}")
    return Condition(
        signal=raw["signal"],
        kind=kinds[0],
        value=raw[kinds[0]],
        weight=_number(raw["weight"], f"{where}.weight"),
        says=str(raw.get("says") or raw["signal"]),
    )


def _phrase(raw: dict[str, Any], where: str, words: dict[str, str]) -> Phrase:
    _known_keys(raw, {"match", "weight"}, where)
    if not isinstance(raw.get("match"), str) or "weight" not in raw:
        raise RulesError(f"{where}: a phrase needs `match` (a regular expression) and `weight`")
    return Phrase(_compile(raw["match"], where, words), _number(raw["weight"], f"{where}.weight"))


QUESTION_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _question(raw: Any, where: str) -> Question:
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: a question needs `id` and `ask` (and `answers` for a choice), not {raw!r}")
    _known_keys(raw, {"id", "ask", "answers"}, where)
    if not isinstance(raw.get("id"), str) or not QUESTION_ID.match(raw["id"]):
        raise RulesError(f"{where}.id: {raw.get('id')!r} is not a question id (lower case, digits, _)")
    if not isinstance(raw.get("ask"), str) or not raw["ask"].strip():
        raise RulesError(f"{where}.ask: the words to ask are missing")
    answers = raw.get("answers") or {}
    if not isinstance(answers, dict):
        raise RulesError(f"{where}.answers: a mapping of each choice to its weight")
    choices = {str(choice): _number(weight, f"{where}.answers.{choice}") for choice, weight in answers.items()}
    if len({choice.lower() for choice in choices}) != len(choices):
        raise RulesError(f"{where}.answers: two choices differ only in case")
    return Question(id=raw["id"], text=raw["ask"].strip(), choices=choices)


def _unique_question_ids(causes: dict[str, RootCauseRules]) -> None:
    seen: dict[str, str] = {}
    for name, cause in causes.items():
        for question in cause.questions:
            if question.id in seen:
                raise RulesError(
                    f"root_causes.{name}.questions: the id {question.id!r} is used by {seen[question.id]} too"
                )
            seen[question.id] = f"root_causes.{name}"


def _root_cause(name: str, raw: dict[str, Any], words: dict[str, str]) -> RootCauseRules:
    where = f"root_causes.{name}"
    _known_keys(
        raw,
        {"label", "playbook_moves", "fit_playbooks", "symptoms", "phrases", "signals", "confirm", "questions"},
        where,
    )
    if name not in ROOT_CAUSES:
        raise RulesError(f"{where}: {name!r} is not a root cause ({', '.join(ROOT_CAUSES)})")
    if unknown := set(raw.get("symptoms") or {}) - set(SYMPTOMS):
        raise RulesError(f"{where}.symptoms: unknown symptom(s) {sorted(unknown)}")
    for playbook in raw.get("fit_playbooks") or ():
        if playbook not in ROOT_CAUSES:
            raise RulesError(f"{where}.fit_playbooks: {playbook!r} is not a root cause's playbook")
    for move in raw.get("playbook_moves") or ():
        if move not in MOVES:
            raise RulesError(f"{where}.playbook_moves: {move!r} is not a move (shared/moves.py lists them)")
    for signal in raw.get("confirm") or ():
        if signal not in FEATURE_NAMES:
            raise RulesError(f"{where}.confirm: unknown signal {signal!r}")
    return RootCauseRules(
        name=name,
        label=raw.get("label", name),
        symptoms={str(k): _number(v, f"{where}.symptoms.{k}") for k, v in (raw.get("symptoms") or {}).items()},
        phrases=tuple(_phrase(p, f"{where}.phrases[{i}]", words) for i, p in enumerate(raw.get("phrases") or [])),
        signals=tuple(_condition(c, f"{where}.signals[{i}]") for i, c in enumerate(raw.get("signals") or [])),
        confirm=tuple(raw.get("confirm") or ()),
        questions=tuple(_question(q, f"{where}.questions[{i}]") for i, q in enumerate(raw.get("questions") or [])),
        playbook_moves=tuple(raw.get("playbook_moves") or ()),
        fit_playbooks=tuple(raw.get("fit_playbooks") or ()),
    )


def parse_rules(raw: dict[str, Any]) -> Rules:
    """Build the rules from the parsed YAML document."""
    try:
        symptoms = raw["symptoms"]
        verdict = raw.get("verdict") or {}
        words = _word_lists(raw.get("words") or {})
        rules = Rules(
            stripe_feedback=frozenset(symptoms["stripe_feedback"]),
            billing_reasons=dict(symptoms.get("billing_reasons") or {}),
            symptom_phrases=tuple(
                (symptom, tuple(_compile(p, f"symptoms.phrases.{symptom}", words) for p in patterns))
                for symptom, patterns in (symptoms.get("phrases") or {}).items()
            ),
            root_causes=(causes := {name: _root_cause(name, body, words) for name, body in raw["root_causes"].items()}),
            discover_below=_number(raw.get("discover_below", 2.5), "discover_below"),
            strong_confidence=_number(raw.get("strong_confidence", 0.2), "strong_confidence"),
            clear_clue=_number(raw.get("clear_clue", 2.0), "clear_clue"),
            clear_lead=_number(raw.get("clear_lead", 1.0), "clear_lead"),
            failed_results=frozenset(raw.get("failed_results") or ()),
            move_on=dict(verdict.get("move_on") or {}),
            move_on_after_failed_attempt=dict(verdict.get("move_on_after_failed_attempt") or {}),
            priority=PriorityRules(**(verdict.get("priority") or {})),
        )
        _unique_question_ids(causes)
        return rules
    except (KeyError, TypeError, AttributeError) as error:
        raise RulesError(f"the rules file is missing or misshapes {error}") from None
    except ValueError as error:
        if isinstance(error, RulesError):
            raise
        raise RulesError(f"a value is not usable: {error}") from None


@lru_cache(maxsize=8)
def load_rules(path: Path = DEFAULT_RULES) -> Rules:
    """Read and check a rules file (cached per path); a RulesError names the file and the place."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(f"rules file {path}: cannot be read ({error})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RulesError(f"rules file {path}:{where} not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise RulesError(f"rules file {path}: expected a mapping with `symptoms` and `root_causes`")
    try:
        return parse_rules(raw)
    except RulesError as error:
        raise RulesError(f"rules file {path}: {error}") from None
