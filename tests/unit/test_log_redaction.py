"""Whatever writes a log line (Brink, httpx, uvicorn, SQLAlchemy's errors), secrets in URLs, the database
password, statement parameters and uvicorn's terminal colours never reach the log."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from shared.db import make_engine
from shared.logs import configure_logging, get_logger
from shared.redaction import error_text
from shared.settings import BrinkSettings

SLACK_URL = "https://hooks.slack.com/services/T0BRINK/B0BRINK/s3cr3tSlackPathPart"
CONTEXT_URL = "https://brink:ctxPassw0rd@context.example/accounts?api_key=ctxQueryK3y"
DATABASE_URL = "postgresql+asyncpg://brink:dbPassw0rd@db.internal:5432/brink"
SECRETS = ("s3cr3tSlackPathPart", "ctxPassw0rd", "ctxQueryK3y", "dbPassw0rd")


@pytest.fixture
def log_output(capsys: pytest.CaptureFixture[str]):
    """Configures Brink's logging, as a service does at start, when first called (in the test itself, where
    capsys holds stderr); then each call returns what was written. The earlier handlers come back afterwards."""
    root = logging.getLogger()
    before = root.handlers[:], root.level
    configured = False

    def written() -> str:
        nonlocal configured
        if not configured:
            configure_logging(service="redaction-test", level="INFO", fmt="console")
            configured = True
        return capsys.readouterr().err

    yield written
    root.handlers[:], _ = before[0], root.setLevel(before[1])


def test_httpx_never_logs_the_urls_it_calls(log_output) -> None:
    log_output()

    def slack(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="ok")

    with httpx.Client(transport=httpx.MockTransport(slack)) as client:
        client.post(SLACK_URL, json={"text": "hello"})
        client.get(CONTEXT_URL)
    logging.getLogger("httpx").warning("HTTP Request: POST %s failed", SLACK_URL)  # a warning still gets out
    written = log_output()
    assert "hooks.slack.com" in written  # the warning is there, its host kept
    for secret in SECRETS[:3]:
        assert secret not in written, written


def test_brink_fields_messages_and_tracebacks_lose_url_secrets_and_the_database_url(log_output) -> None:
    log_output()
    log = get_logger("redaction-test")
    log.info("notify.failed", url=SLACK_URL, context=CONTEXT_URL, database_url=DATABASE_URL)
    log.warning(f"could not reach {CONTEXT_URL}")
    try:
        raise ConnectionError(f"cannot connect to {DATABASE_URL}")
    except ConnectionError:
        log.exception("db.failed")
    written = log_output()
    assert "notify.failed" in written and "db.failed" in written and "db.internal" in written
    for secret in SECRETS:
        assert secret not in written, written


def test_uvicorns_colour_copy_of_each_message_is_dropped(log_output) -> None:
    log_output()
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"}
    )
    written = log_output()
    assert "Started server process [42]" in written, written
    assert "color_message" not in written and "\x1b[36m" not in written, repr(written)


def test_the_database_url_is_a_secret_setting() -> None:
    settings = BrinkSettings(_env_file=None, api_tokens=["k3y-" + "0123456789abcdef"], database_url=DATABASE_URL)  # type: ignore[call-arg]
    assert "dbPassw0rd" not in repr(settings) and "dbPassw0rd" not in str(settings.model_dump())
    assert settings.database_url.get_secret_value() == DATABASE_URL


async def test_database_errors_carry_no_statement_values(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'redaction.db'}")
    people = sa.Table("people", sa.MetaData(), sa.Column("email", sa.String, unique=True))
    async with engine.begin() as connection:
        await connection.run_sync(people.metadata.create_all)
        await connection.execute(people.insert().values(email="ann.customer@example.com"))
    with pytest.raises(sa.exc.IntegrityError) as error:
        async with engine.begin() as connection:
            await connection.execute(people.insert().values(email="ann.customer@example.com"))
    await engine.dispose()
    assert "ann.customer@example.com" not in str(error.value)
    assert "ann.customer@example.com" not in error_text(error.value)


def test_error_text_drops_postgres_row_details_and_sql_parameters() -> None:
    class UniqueViolation(Exception):
        pass

    raised = UniqueViolation(
        'duplicate key value violates unique constraint "uq_people_email"\n'
        "DETAIL:  Key (email)=(ann.customer@example.com) already exists.\n"
        "[SQL: INSERT INTO people (email) VALUES ($1)]\n"
        "[parameters: ('ann.customer@example.com',)]"
    )
    text = error_text(raised)
    assert text.startswith("UniqueViolation: duplicate key value violates unique constraint")
    assert "ann.customer@example.com" not in text and "[SQL: INSERT INTO people" in text


async def test_the_context_source_gets_its_token_in_a_header_not_in_the_url() -> None:
    from pydantic import SecretStr

    from services.diagnosis.context import ContextSource

    seen: list[httpx.Request] = []

    def source(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404)

    token = "ctx-" + "a1b2c3d4e5f60718"
    context = ContextSource(
        base_url="https://context.example", token=SecretStr(token), transport=httpx.MockTransport(source)
    )
    assert await context.fetch("stripe:cus_1") == {}
    assert seen[0].headers["authorization"] == f"Bearer {token}"
    assert token not in str(seen[0].url)


def test_uvicorns_own_logging_config_is_taken_over(log_output) -> None:
    """A server started with uvicorn's default config in the same process (as a test double is) gives uvicorn's
    loggers their own handlers, which would print past the formatter and its redaction."""
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # as log_level="warning" leaves it
    log_output()
    logging.getLogger("uvicorn.error").info("calling %s", SLACK_URL)
    written = log_output()
    assert "hooks.slack.com" in written and SECRETS[0] not in written, written
