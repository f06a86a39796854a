"""Diagnosis: tells the symptom from the root cause and decides whether to fight."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.diagnosis import api, consumers
from services.diagnosis.context import ContextSource
from services.diagnosis.models import handled, outbox
from services.diagnosis.settings import DiagnosisSettings
from shared.events import (
    AccountSignalsUpdated,
    CancellationReceived,
    CancellationWithdrawn,
    CaseClosed,
    InterventionLogged,
)
from shared.logs import configure_logging
from shared.runtime import Runtime, serve
from shared.settings import load_settings
from shared.web import create_app

SERVICE = "diagnosis"


def build_app(settings: DiagnosisSettings) -> FastAPI:
    runtime = Runtime(service=SERVICE, settings=settings, outbox=outbox, handled=handled)
    context = (
        ContextSource(
            base_url=settings.context_url,
            timeout_seconds=settings.context_timeout_seconds,
            attempts=settings.context_attempts,
        )
        if settings.context_url
        else None
    )
    runtime.consume(
        "cancellations",
        {
            CancellationReceived.TYPE: partial(consumers.on_cancellation_received, context=context),
            CancellationWithdrawn.TYPE: consumers.on_cancellation_withdrawn,
        },
    )
    runtime.consume("signals", {AccountSignalsUpdated.TYPE: partial(consumers.on_signals_updated, context=context)})
    runtime.consume(
        "history",
        {
            InterventionLogged.TYPE: partial(consumers.on_intervention_logged, context=context),
            CaseClosed.TYPE: consumers.on_case_closed,
        },
    )

    app = create_app(
        service=SERVICE,
        title="Brink diagnosis",
        description="Account signals, root-cause diagnosis and verdicts.",
        lifespan=runtime.lifespan,
        api_routers=[api.router],
        api_tokens=settings.api_tokens,
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.settings = settings
    return app


def main() -> None:
    settings = load_settings(DiagnosisSettings)
    configure_logging(service=SERVICE, level=settings.log_level, fmt=settings.log_format)
    serve(lambda: build_app(settings), settings=settings, port=settings.diagnosis_port)


if __name__ == "__main__":
    main()
