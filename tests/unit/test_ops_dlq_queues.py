"""`brink dlq list` looks at every consumer queue the services declare, by default."""

from __future__ import annotations

from services.diagnosis.app import build_app as build_diagnosis
from services.diagnosis.settings import DiagnosisSettings
from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.outreach.app import build_app as build_outreach
from services.outreach.settings import OutreachSettings
from shared.dlq import DEFAULT_CONSUMER_QUEUES
from tests.conftest import settings_for


def test_the_default_dead_letter_queues_are_the_declared_consumer_queues() -> None:
    declared = set()
    for build, cls in (
        (build_intake, IntakeSettings),
        (build_diagnosis, DiagnosisSettings),
        (build_outreach, OutreachSettings),
    ):
        app = build(settings_for(cls, database_url="sqlite+aiosqlite:///unused.db", amqp_url="amqp://unused/"))
        declared |= {consumer.spec.name for consumer in app.state.runtime.consumers}
    assert declared == set(DEFAULT_CONSUMER_QUEUES)
