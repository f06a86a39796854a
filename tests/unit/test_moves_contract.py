"""One vocabulary of moves: diagnosis's rules and outreach's playbooks name the same moves, both ways."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from services.diagnosis.rules import DEFAULT_RULES, Rules, RulesError, load_rules, parse_rules
from services.outreach.playbooks import PLAYBOOK_DIR, Playbook, PlaybookError, load_playbooks
from shared.moves import MOVES

VERDICT_PLAYBOOKS = ("discover", "move_on")  # chosen by the verdict, not by a root cause


def breaches(rules: Rules, playbooks: dict[str, Playbook]) -> list[str]:
    """Every way the two sides disagree: a rule's move no playbook produces, or a playbook's move no rule names."""
    found = []
    for cause, body in rules.root_causes.items():
        produced = {step.move for step in playbooks[cause].steps} if cause in playbooks else set()
        named = set(body.playbook_moves)
        found += [f"rules name {move!r} for {cause}; its playbook never does it" for move in sorted(named - produced)]
        found += [f"the {cause} playbook does {move!r}; the rules never name it" for move in sorted(produced - named)]
    found += [
        f"playbook {name!r} answers no root cause of the rules"
        for name in playbooks
        if name not in rules.root_causes and name not in VERDICT_PLAYBOOKS
    ]
    used = {step.move for playbook in playbooks.values() for step in playbook.steps}
    found += [f"move {move!r} is in the vocabulary but nothing does it" for move in sorted(set(MOVES) - used)]
    return found


def test_the_bundled_rules_and_playbooks_speak_the_same_moves() -> None:
    assert breaches(load_rules(), load_playbooks()) == []


def test_a_rule_naming_a_move_no_playbook_produces_breaks_the_contract() -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["rocky_onboarding"]["playbook_moves"].append("reach_executive")
    assert breaches(parse_rules(raw), load_playbooks()) == [
        "rules name 'reach_executive' for rocky_onboarding; its playbook never does it"
    ]


def test_a_playbook_step_no_rule_names_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(PLAYBOOK_DIR, tmp_path, dirs_exist_ok=True)
    playbook = yaml.safe_load((tmp_path / "known_issue.yaml").read_text())
    extra = copy.deepcopy(playbook["steps"][0]) | {"move": "new_free_trial", "title": "Offer a trial after the fix"}
    playbook["steps"].append(extra)
    (tmp_path / "known_issue.yaml").write_text(yaml.safe_dump(playbook))
    assert breaches(load_rules(), load_playbooks(tmp_path)) == [
        "the known_issue playbook does 'new_free_trial'; the rules never name it"
    ]


def test_a_move_outside_the_vocabulary_is_refused_on_either_side(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["wrong_fit"]["playbook_moves"] = ["show_the_fit"]
    with pytest.raises(RulesError, match=r"root_causes\.wrong_fit\.playbook_moves: 'show_the_fit' is not a move"):
        parse_rules(raw)
    shutil.copytree(PLAYBOOK_DIR, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "wrong_fit.yaml").read_text().replace("move: honest_fit_review", "move: show_the_fit")
    (tmp_path / "wrong_fit.yaml").write_text(text)
    with pytest.raises(PlaybookError, match=r"wrong_fit\.yaml: steps\.0\.move: 'show_the_fit' is not a move"):
        load_playbooks(tmp_path)
