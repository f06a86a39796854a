"""The signals API and re-diagnosis, on the real broker and both databases."""

from __future__ import annotations

from sqlalchemy import select

from services.diagnosis.models import AccountSignal
from tests.diagnosis_helpers import AUTH, cancellation, now_iso, running_diagnosis


def group(**values: object) -> dict[str, object]:
    return {"observed_at": now_iso(), "source": "crm", **values}


async def test_signals_need_a_bearer_token(database_url: str, amqp_url: str) -> None:
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        body = {"usage": group(active_users=3)}
        missing = await diagnosis.client.put("/v1/accounts/stripe:cus_1/signals", json=body)
        wrong = await diagnosis.client.put(
            "/v1/accounts/stripe:cus_1/signals", json=body, headers={"Authorization": "Bearer not-a-token"}
        )
    assert missing.status_code == 401 and wrong.status_code == 401
    assert "bearer token" in missing.json()["detail"]


async def test_invalid_signals_are_422_with_the_field_and_the_reason(database_url: str, amqp_url: str) -> None:
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        unknown = await diagnosis.put_signals("stripe:cus_2", {"usage": group(active_userz=3)})
        unknown_group = await diagnosis.put_signals("stripe:cus_2", {"mood": group()})
        no_time = await diagnosis.put_signals("stripe:cus_2", {"usage": {"source": "crm", "active_users": 3}})
        naive = await diagnosis.put_signals(
            "stripe:cus_2", {"usage": {"observed_at": "2026-11-01T10:00:00", "source": "crm"}}
        )
        out_of_range = await diagnosis.put_signals("stripe:cus_2", {"company": group(icp_fit=140)})
        empty = await diagnosis.put_signals("stripe:cus_2", {})

    def problems(response) -> dict[str, str]:
        assert response.status_code == 422, response.text
        return {issue["field"]: issue["problem"] for issue in response.json()["errors"]}

    assert "extra inputs are not permitted" in problems(unknown)["usage.active_userz"].lower()
    assert "mood" in problems(unknown_group)
    assert "required" in problems(no_time)["usage.observed_at"].lower()
    assert "timezone" in problems(naive)["usage.observed_at"].lower()
    assert "less than or equal to 100" in problems(out_of_range)["company.icp_fit"]
    assert "at least one signal group" in " ".join(problems(empty).values())


async def test_a_put_replaces_the_groups_it_names_and_keeps_the_others(database_url: str, amqp_url: str) -> None:
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        first = await diagnosis.put_signals(
            "chargebee:cb_9", {"usage": group(active_users=3, licensed_seats=10), "company": group(icp_fit=80)}
        )
        second = await diagnosis.put_signals("chargebee:cb_9", {"usage": group(active_users=9)})
        async with diagnosis.app.state.runtime.sessions() as session:
            rows = {
                row.kind: row
                for row in (
                    await session.execute(select(AccountSignal).where(AccountSignal.account_id == "chargebee:cb_9"))
                ).scalars()
            }

    assert first.status_code == 200 and first.json()["signal_version"] == 1
    assert first.json()["rediagnosing"] is False  # no open cancellation for this account
    assert second.json() == {
        "account_id": "chargebee:cb_9",
        "signal_version": 2,
        "groups": ["usage"],
        "stale": [],
        "rediagnosing": False,
    }
    assert rows["usage"].values == {
        "observed_at": rows["usage"].values["observed_at"],
        "source": "crm",
        "active_users": 9,
    }
    assert rows["company"].values["icp_fit"] == 80 and rows["company"].signal_version == 1


async def test_new_signals_rediagnose_and_publish_a_new_version(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="too_expensive", comment="Hard to justify the cost.")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        [first] = await diagnosis.completed_for(event.cancellation_id)
        accepted = await diagnosis.put_signals(
            event.account_id,
            {
                "stakeholders": group(buyer="VP Sales", users_in_evaluation=False),
                "usage": group(active_users=4, licensed_seats=40),
            },
        )
        versions = await diagnosis.completed_for(event.cancellation_id, count=2)
        latest = await diagnosis.latest(event.account_id)

    assert first["diagnosis_version"] == 1 and first["verdict"]["decision"] == "discover"
    assert accepted.json()["rediagnosing"] is True
    second = versions[1]
    assert second["diagnosis_version"] == 2 and second["signal_version"] == 1
    assert second["root_cause"] == "stakeholders_not_bought_in"
    assert second["verdict"]["decision"] == "pursue"
    assert second["recommended_playbook"] == "stakeholders_not_bought_in"
    top = second["hypotheses"][0]
    assert any(e["signal"] == "stakeholders.users_in_evaluation" and e["weight"] > 0 for e in top["evidence"])
    assert latest["version"] == 2 and latest["diagnosis"]["root_cause"] == "stakeholders_not_bought_in"
    asks = {ask["id"] for u in second["unknowns"] for ask in u["asks"]}
    assert {"implementer", "implementer_on_board"} <= asks


async def test_a_new_cancellation_is_diagnosed_with_the_signals_already_stored(
    database_url: str, amqp_url: str
) -> None:
    """Signals sent before the cancellation arrives weigh in its first diagnosis (read with the cancellation's
    insert, in one statement on PostgreSQL)."""
    event = cancellation(feedback="too_expensive", comment="Hard to justify the cost.")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        accepted = await diagnosis.put_signals(
            event.account_id,
            {
                "stakeholders": group(buyer="VP Sales", users_in_evaluation=False),
                "usage": group(active_users=4, licensed_seats=40),
            },
        )
        await diagnosis.publish(event)
        [first] = await diagnosis.completed_for(event.cancellation_id)

    assert accepted.json()["rediagnosing"] is False  # nothing to diagnose again yet
    assert first["diagnosis_version"] == 1 and first["signal_version"] == 1
    assert first["root_cause"] == "stakeholders_not_bought_in" and first["verdict"]["decision"] == "pursue"


async def test_signals_for_an_unknown_account_answer_with_the_version(database_url: str, amqp_url: str) -> None:
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        response = await diagnosis.put_signals(
            "stripe:cus_nobody",
            {
                "relationship": group(notes=[{"text": "Spoke to Anna, the champion, about renewal.", "author": "am"}]),
            },
            **AUTH,
        )
        missing = await diagnosis.client.get("/v1/accounts/stripe:cus_nobody/diagnosis", headers=AUTH)
    assert response.status_code == 200 and response.json()["groups"] == ["relationship"]
    assert missing.status_code == 404 and "no diagnosis" in missing.json()["detail"]


async def test_an_older_report_never_undoes_a_newer_one(database_url: str, amqp_url: str) -> None:
    account = "stripe:cus_late"
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.put_signals(
            account, {"company": {"observed_at": "2026-11-20T10:00:00Z", "source": "crm", "icp_fit": 80}}
        )
        late = await diagnosis.put_signals(
            account,
            {
                "company": {"observed_at": "2026-11-01T10:00:00Z", "source": "crm", "icp_fit": 10},
                "usage": group(active_users=5),
            },
        )
        async with diagnosis.app.state.runtime.sessions() as session:
            fit = await session.scalar(
                select(AccountSignal.values).where(AccountSignal.account_id == account, AccountSignal.kind == "company")
            )
    assert late.status_code == 200
    assert late.json()["groups"] == ["usage"] and late.json()["stale"] == ["company"]
    assert fit["icp_fit"] == 80
