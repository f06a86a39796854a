"""Outreach's plain-Python domain: playbook files, rotation, webhook signatures (the ladders: test_escalation_ladder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.outreach.notify.webhook import sign
from services.outreach.playbooks import PLAYBOOK_DIR, ROOT_CAUSES, PlaybookError, choose, load_playbooks
from services.outreach.rotation import take_turn, take_turns


def test_every_root_cause_has_a_playbook_and_discover_and_move_on_exist() -> None:
    playbooks = load_playbooks()
    assert set(ROOT_CAUSES) | {"discover", "move_on"} == set(playbooks)
    assert [step.action for step in playbooks["move_on"].steps] == ["closing"]
    assert not playbooks["move_on"].escalates


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("steps:\n  - action: fax\n    move: commit_to_fix\n    title: Send a fax\n", "steps.0.action"),
        ("steps:\n  - action: offer\n    move: fix_or_workaround\n    title: Offer\n", "needs 'offer: <what>'"),
        (
            "steps:\n  - action: call\n    move: commit_to_fix\n    title: Call\n    owner_role: intern\n",
            "steps.0.owner_role",
        ),
        (
            "steps:\n  - action: call\n    move: commit_to_fix\n    title: Call\n    due_after_hours: -1\n",
            "steps.0.due_after_hours",
        ),
        ("steps: []\n", "steps"),
        (
            "name: other\nsteps:\n  - action: call\n    move: commit_to_fix\n    title: Call\n",
            "differs from the file name",
        ),
        ("steps: [unclosed\n", "cannot be read"),
        (
            "steps:\n  - action: call\n    move: commit_to_fix\n    title: Call\n    escalate_afer_hours: 4\n",
            "escalate_afer_hours",
        ),
        ("steps:\n  - action: call\n    title: Call\n", "steps.0.move"),
        ("steps:\n  - action: call\n    move: pray\n    title: Call\n", "steps.0.move: 'pray' is not a move"),
    ],
)
def test_a_bad_playbook_file_is_refused_naming_file_and_field(tmp_path: Path, text: str, complaint: str) -> None:
    shutil.copytree(PLAYBOOK_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "known_issue.yaml").write_text(text)
    with pytest.raises(PlaybookError) as error:
        load_playbooks(tmp_path)
    assert "known_issue.yaml" in str(error.value) and complaint in str(error.value)


def test_operators_can_drop_in_a_playbook_but_not_remove_discover(tmp_path: Path) -> None:
    shutil.copytree(PLAYBOOK_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "budget_freeze.yaml").write_text(
        "steps:\n  - action: email\n    move: find_the_decision_maker\n    title: Ask when budgets reopen\n"
    )
    playbooks = load_playbooks(tmp_path)
    assert choose(playbooks, decision="pursue", recommended="budget_freeze", root_cause="x").name == "budget_freeze"
    assert choose(playbooks, decision="pursue", recommended="nothing", root_cause="nothing").name == "discover"
    assert choose(playbooks, decision="move_on", recommended="known_issue", root_cause="known_issue").name == "move_on"
    (tmp_path / "discover.yaml").unlink()
    with pytest.raises(PlaybookError, match=r"lacks discover\.yaml"):
        load_playbooks(tmp_path)


def test_rotation_takes_turns_and_wraps() -> None:
    people, cursor, turns = ["ana", "ben", "cleo"], 0, []
    for _ in range(4):
        person, cursor = take_turn(people, cursor)
        turns.append(person)
    assert turns == ["ana", "ben", "cleo", "ana"]
    assert take_turn(["ana"], 7) == ("ana", 0)  # a shorter list after a config change still works


def test_several_turns_at_once_name_whom_single_turns_would() -> None:
    people = ["ana", "ben", "cleo"]
    for cursor in range(-3, 8):
        one_by_one, at = [], cursor
        for _ in range(5):
            person, at = take_turn(people, at)
            one_by_one.append(person)
        assert list(take_turns(people, cursor, 5)) == one_by_one


def test_webhook_signature_matches_the_standard_webhooks_reference_vector() -> None:
    signature = sign(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "module", ["playbooks", "ladder", "ladder_file", "climbing", "working_hours", "rotation", "clock", "policy"]
)
def test_domain_modules_import_no_framework(module: str) -> None:
    import ast

    tree = ast.parse((PLAYBOOK_DIR.parent / f"{module}.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"fastapi", "sqlalchemy", "aio_pika", "httpx"}


def test_an_outbound_webhook_without_a_secret_is_refused() -> None:
    from pydantic import ValidationError

    from services.outreach.settings import OutreachSettings
    from shared.settings import describe_error

    with pytest.raises(ValidationError) as error:
        OutreachSettings(
            _env_file=None, api_tokens=["t0ken-for-the-test"], outbound_webhook_url="https://crm.example/hook"
        )
    assert "needs BRINK_OUTBOUND_WEBHOOK_SECRET" in describe_error(error.value, OutreachSettings)
