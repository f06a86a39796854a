"""Intake: takes cancellation signals in from billing systems and tools, never losing one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.intake import api, cancellations_api
from services.intake.api_support import IntakeState
from services.intake.models import WebhookEvent, outbox
from services.intake.postgres_deliveries import PostgresDeliveries, asyncpg_dsn
from services.intake.reconciler import Reconciler
from services.intake.repository import PortableDeliveries
from services.intake.settings import IntakeSettings
from shared.billing.connect import billing_connections
from shared.db import make_engine
from shared.logs import configure_logging
from shared.retention import received_deliveries
from shared.runtime import Runtime, freeze_startup_objects, serve
from shared.settings import load_settings
from shared.web import create_app

SERVICE = "intake"
# Group commit keeps at most a few statements in flight (postgres_deliveries.STATEMENTS_IN_FLIGHT); the pool
# opens connections only as they are needed, and the rest is room for a retry on a fresh connection.
DELIVERY_CONNECTIONS = 16


def build_app(settings: IntakeSettings) -> FastAPI:
    """The intake app; its runtime (database, broker, outbox relay) starts with the lifespan."""
    deliveries = (
        None
        if settings.is_sqlite
        else PostgresDeliveries(
            asyncpg_dsn(settings.database_url.get_secret_value()), max_connections=DELIVERY_CONNECTIONS
        )
    )
    # With webhooks on their own pool, the engine serves only the relay, reports and health checks.
    engine = None if deliveries is None else make_engine(settings.database_url.get_secret_value(), pool_size=3)
    runtime = Runtime(
        service=SERVICE,
        settings=settings,
        outbox=outbox,
        engine=engine,
        expiring=(received_deliveries(WebhookEvent.__table__),),
    )
    recorder = deliveries if deliveries is not None else PortableDeliveries(runtime.sessions)
    connections = billing_connections(settings, purpose="reconciliation") if settings.run_workers else {}
    reconciler = None
    if connections:
        reconciler = Reconciler(
            connections=connections,
            deliveries=recorder,
            sessions=runtime.sessions,
            interval_seconds=settings.reconcile_interval_seconds,
            overlap_seconds=settings.reconcile_overlap_seconds,
            first_days=settings.reconcile_first_days,
            lease_seconds=settings.reconcile_lease_seconds,
            after_accepted=runtime.wake_relay,
        )
        runtime.run_in_background(reconciler.run)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if deliveries is not None:
            # Started before the runtime's background loops, which include the reconciler that records through it.
            await deliveries.start()
        try:
            async with runtime.lifespan(app):
                yield
        finally:
            if deliveries is not None:
                await deliveries.close()
            for connection in connections.values():
                await connection.close()

    app = create_app(
        service=SERVICE,
        title="Brink intake",
        description="Receives Stripe and Chargebee webhooks and internal cancellation reports.",
        lifespan=lifespan,
        direct_routers=[api.router],
        api_routers=[cancellations_api.router],
        api_tokens=settings.api_tokens,
        ops_tokens=settings.ops_tokens,
        readiness=runtime.readiness(),
        max_body_bytes=settings.max_body_bytes,
    )
    app.state.runtime = runtime
    app.state.reconciler = reconciler
    app.state.intake = IntakeState(settings=settings, runtime=runtime, deliveries=recorder)
    return app


def app_from_environment() -> FastAPI:
    """The app as each of several intake processes builds it (uvicorn imports this by name)."""
    settings = load_settings(IntakeSettings)
    configure_logging(service=SERVICE, level=settings.log_level, fmt=settings.log_format)
    app = build_app(settings)
    freeze_startup_objects()
    return app


def main() -> None:
    settings = load_settings(IntakeSettings)
    configure_logging(service=SERVICE, level=settings.log_level, fmt=settings.log_format)
    serve(
        lambda: build_app(settings),
        settings=settings,
        port=settings.intake_port,
        processes=settings.intake_processes,
        factory_path="services.intake.app:app_from_environment",
    )


if __name__ == "__main__":
    main()
