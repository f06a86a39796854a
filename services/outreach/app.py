"""Outreach: cases, tasks and escalation until the customer is saved or let go."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.outreach import api, consumers
from services.outreach.models import handled, outbox
from services.outreach.playbooks import load_playbooks
from services.outreach.settings import OutreachSettings
from shared.events import DiagnosisCompleted
from shared.logs import configure_logging
from shared.runtime import Runtime, serve
from shared.settings import load_settings
from shared.web import create_app

SERVICE = "outreach"


def build_app(settings: OutreachSettings) -> FastAPI:
    runtime = Runtime(service=SERVICE, settings=settings, outbox=outbox, handled=handled)
    playbooks = load_playbooks()
    runtime.consume("diagnoses", {
        DiagnosisCompleted.TYPE: partial(consumers.on_diagnosis_completed, playbooks=playbooks,
                                         default_owner=settings.csm_rotation[0]),
    })

    app = create_app(
        service=SERVICE,
        title="Brink outreach",
        description="Cases, playbook tasks, escalation and outcomes.",
        lifespan=runtime.lifespan,
        api_routers=[api.router],
        api_tokens=settings.api_tokens,
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.settings = settings
    return app


def main() -> None:
    settings = load_settings(OutreachSettings)
    configure_logging(service=SERVICE, level=settings.log_level, fmt=settings.log_format)
    serve(lambda: build_app(settings), settings=settings, port=settings.outreach_port)


if __name__ == "__main__":
    main()
