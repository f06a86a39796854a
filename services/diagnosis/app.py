"""Diagnosis: tells the symptom from the root cause and decides whether to fight."""

from __future__ import annotations

import sys
from functools import partial

from fastapi import FastAPI

from services.diagnosis import api, consumers
from services.diagnosis.context import ContextSource
from services.diagnosis.models import handled, outbox
from services.diagnosis.outcomes import SaveRates
from services.diagnosis.rules import Rules, RulesError, load_rules
from services.diagnosis.settings import DiagnosisSettings
from shared.consumer import Batched
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


def build_app(settings: DiagnosisSettings, *, rules: Rules | None = None) -> FastAPI:
    rules = rules or load_rules(settings.rules_file)
    runtime = Runtime(service=SERVICE, settings=settings, outbox=outbox, handled=handled)
    context = (
        ContextSource(
            base_url=settings.context_url,
            token=settings.context_token,
            timeout_seconds=settings.context_timeout_seconds,
            attempts=settings.context_attempts,
        )
        if settings.context_url
        else None
    )
    learning = SaveRates(min_cases=settings.learning_min_cases, refresh_seconds=settings.learning_refresh_seconds)
    runtime.consume(
        "cancellations",
        {
            CancellationReceived.TYPE: Batched(
                partial(consumers.on_cancellations_received, context=context, rules=rules, learning=learning)
            ),
            CancellationWithdrawn.TYPE: consumers.on_cancellation_withdrawn,
        },
    )
    runtime.consume(
        "signals",
        {
            AccountSignalsUpdated.TYPE: partial(
                consumers.on_signals_updated, context=context, rules=rules, learning=learning
            )
        },
    )
    runtime.consume(
        "history",
        {
            InterventionLogged.TYPE: partial(
                consumers.on_intervention_logged, context=context, rules=rules, learning=learning
            ),
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
        ops_tokens=settings.ops_tokens,
        readiness=runtime.readiness(),
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.rules = rules
    return app


def main() -> None:
    settings = load_settings(DiagnosisSettings)
    configure_logging(service=SERVICE, level=settings.log_level, fmt=settings.log_format)
    try:
        rules = load_rules(settings.rules_file)
    except RulesError as error:
        print(f"brink: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(lambda: build_app(settings, rules=rules), settings=settings, port=settings.diagnosis_port)


if __name__ == "__main__":
    main()
