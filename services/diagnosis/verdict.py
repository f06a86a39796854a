"""What was tried, whether to fight, and how urgently. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass

from services.diagnosis.classifier import Scored
from services.diagnosis.rules import PriorityRules, Rules


@dataclass(frozen=True)
class Attempt:
    """Something already done for this account: an intervention, or a case that closed."""

    action: str
    result: str
    playbook: str | None = None
    whole_playbook: bool = False  # a case closed under this playbook, not one step of it
    note: str | None = None  # what the person who did it wrote down


@dataclass(frozen=True)
class Decision:
    decision: str
    reason: str | None
    root_cause: str
    playbook: str


def playbook_of(attempt: Attempt, rules: Rules) -> str | None:
    """The root cause whose playbook an attempt belongs to, by name prefix or by its listed moves."""
    if attempt.playbook in rules.root_causes:
        return attempt.playbook
    action = attempt.action.strip().lower()
    for name, cause in rules.root_causes.items():
        if action == name or action.split(":")[0].split(".")[0].split("/")[0] == name:
            return name
        if action in cause.playbook_moves:
            return name
    return None


def _failed(attempt: Attempt, rules: Rules) -> bool:
    return attempt.result.strip().lower() in rules.failed_results


def attempted_playbooks(history: list[Attempt], rules: Rules) -> set[str]:
    """Root causes with at least one failed step: enough for an honest attempt at showing the fit."""
    return {cause for attempt in history if _failed(attempt, rules) and (cause := playbook_of(attempt, rules))}


def exhausted_playbooks(history: list[Attempt], rules: Rules) -> set[str]:
    """Root causes whose playbook failed as a whole, or every one of whose moves failed."""
    failed_moves: dict[str, set[str]] = {}
    exhausted = set()
    for attempt in history:
        if not _failed(attempt, rules) or (cause := playbook_of(attempt, rules)) is None:
            continue
        action = attempt.action.strip().lower()
        if attempt.whole_playbook or action == cause:
            exhausted.add(cause)
        failed_moves.setdefault(cause, set()).add(action.split(".")[-1].split(":")[-1].split("/")[-1])
    for cause, moves in failed_moves.items():
        planned = set(rules.root_causes[cause].playbook_moves)
        if planned and planned <= moves:
            exhausted.add(cause)
    return exhausted


def avoid_list(history: list[Attempt], rules: Rules) -> list[str]:
    """Actions that failed before and must not be repeated blindly."""
    return sorted({attempt.action for attempt in history if _failed(attempt, rules) and not attempt.whole_playbook})


def said_clearly(ranked: list[Scored], rules: Rules) -> bool:
    """Whether something specific (not the stated reason, which is a symptom) says the leading cause on its own,
    and nothing says another as much: thin in total, yet enough to act on."""
    top, runner_up = ranked[0], (ranked[1].score if len(ranked) > 1 else 0.0)
    specific = max((clue.weight for clue in top.evidence if clue.signal != "symptom"), default=0.0)
    return specific >= rules.clear_clue and top.score - max(runner_up, 0.0) >= rules.clear_lead


def decide(ranked: list[Scored], *, history: list[Attempt], rules: Rules) -> Decision:
    """Pursue the best pursuable cause, move on, or discover when too little is known."""
    top = ranked[0]
    # A cause that ends the fight after one honest attempt, attempted and failed, is known well enough: someone
    # already judged it so and tried; the customer's thin words now do not make it unknown again.
    if (
        top.score > 0
        and top.root_cause in rules.move_on_after_failed_attempt
        and top.root_cause in attempted_playbooks(history, rules)
    ):
        return Decision("move_on", rules.move_on_after_failed_attempt[top.root_cause], top.root_cause, "move_on")
    if top.score < rules.discover_below and not said_clearly(ranked, rules):
        return Decision("discover", "too little is known to choose", top.root_cause, "discover")
    if top.root_cause in rules.move_on:
        return Decision("move_on", rules.move_on[top.root_cause], top.root_cause, "move_on")
    failed = exhausted_playbooks(history, rules)
    if top.root_cause not in failed:
        return Decision("pursue", None, top.root_cause, top.root_cause)
    for alternative in ranked[1:]:
        if alternative.score < rules.discover_below:
            break
        if alternative.root_cause not in failed and alternative.root_cause not in rules.move_on:
            return Decision(
                "pursue", f"{top.root_cause} playbook already failed", alternative.root_cause, alternative.root_cause
            )
    return Decision(
        "discover",
        f"the {top.root_cause} playbook already failed; find out what else is wrong",
        top.root_cause,
        "discover",
    )


def priority(
    *, decision: str, mrr_major: float | None, icp_fit: float | None, days_left: float | None, rules: PriorityRules
) -> int:
    """0-100 from revenue at risk, fit and days left; nothing for a customer we move on from."""
    if decision == "move_on":
        return 0
    revenue = min(mrr_major / rules.full_revenue_at, 1.0) if mrr_major is not None else 0.3
    fit = (icp_fit if icp_fit is not None else rules.default_fit) / 100
    if days_left is None:
        urgency = 0.5
    elif days_left <= 0:
        urgency = 0.8  # already gone: a win-back, still worth doing soon
    else:
        urgency = 1.0 - min(days_left / rules.relaxed_days, 1.0)
    weights = rules.weights
    total = weights["revenue"] * revenue + weights["fit"] * fit + weights["urgency"] * urgency
    return max(0, min(100, round(100 * total)))
