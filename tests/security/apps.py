"""The three services' apps, built but not started: enough to check what is refused before any work is done."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from tests.conftest import settings_for


def build_apps(*, database_url: str, amqp_url: str, **overrides: Any) -> dict[str, FastAPI]:
    from services.diagnosis.app import build_app as build_diagnosis
    from services.diagnosis.settings import DiagnosisSettings
    from services.intake.app import build_app as build_intake
    from services.intake.settings import IntakeSettings
    from services.outreach.app import build_app as build_outreach
    from services.outreach.settings import OutreachSettings

    urls = {"database_url": database_url, "amqp_url": amqp_url, **overrides}
    return {
        "intake": build_intake(settings_for(IntakeSettings, **urls)),
        "diagnosis": build_diagnosis(settings_for(DiagnosisSettings, **urls)),
        "outreach": build_outreach(settings_for(OutreachSettings, **urls)),
    }


def v1_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, concrete path) under /v1/ in the app's OpenAPI, path parameters filled in harmlessly."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            routes.extend((method.upper(), concrete) for method in sorted(operations))
    return routes
