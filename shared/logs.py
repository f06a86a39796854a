"""Structured logs (JSON by default) that carry the correlation id of the work in hand."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars

from shared.redaction import redact_value

__all__ = ["bind_contextvars", "bound_contextvars", "clear_contextvars", "configure_logging", "get_logger"]

# Libraries that log every request's full URL at INFO (httpx: a Slack webhook URL is its secret).
URL_LOGGERS = ("httpx", "httpcore")


def _redact(_logger: object, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """The last step before a line is written, for Brink's lines and the libraries' alike: no secret, no URL
    path or credentials, no SQL parameters, whatever the field (the message and a rendered traceback too)."""
    event.pop("color_message", None)  # uvicorn's copy of the message with terminal escape codes
    return {key: redact_value(key, value) for key, value in event.items()}


def configure_logging(*, service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and the standard library (uvicorn, aio-pika) through one formatter."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        # Level first: a filtered-out line (info on a busy intake) then costs no processing at all.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors, structlog.stdlib.ExtraAdder()],
        processors=[
            lambda _l, _n, event: {**event, "service": service},
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own logging config (applied by any server started with its defaults in the same process) gives its
    # loggers handlers of their own and stops them propagating: their lines would bypass the formatter and redaction.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.disabled = False
        uvicorn_logger.setLevel(logging.NOTSET)
    for noisy in ("aio_pika", "aiormq", "uvicorn.access", *URL_LOGGERS):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
