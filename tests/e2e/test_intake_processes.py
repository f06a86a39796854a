"""Intake as several processes on one port: every webhook published once, /metrics counts them all, all niced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aio_pika
import httpx

from tests.conftest import STRIPE_SECRET, TOKEN
from tests.e2e.test_brink_run import ROOT, free_port, wait_ready
from tests.helpers import signed, stripe_event, stripe_subscription

WEBHOOKS = 240


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def niceness_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def accepted_in_metrics(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("brink_webhooks_total{") and 'outcome="accepted"' in line
    )


async def test_two_intake_processes_publish_each_webhook_once_and_report_together(
    postgres_url: str, amqp_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BRINK_", "PROMETHEUS_"))},
        "PYTHONPATH": str(ROOT),
        "BRINK_DATABASE_URL": postgres_url,
        "BRINK_AMQP_URL": amqp_url,
        "BRINK_API_TOKENS": TOKEN,
        "BRINK_STRIPE_WEBHOOK_SECRETS": STRIPE_SECRET,
        "BRINK_INTAKE_PORT": str(port),
        "BRINK_HOST": "127.0.0.1",
        "BRINK_LOG_LEVEL": "WARNING",
        "BRINK_INTAKE_PROCESSES": "2",
        "BRINK_NICENESS": "7",
    }
    connection = await aio_pika.connect(amqp_url)
    log_path = tmp_path / "intake.log"
    with log_path.open("wb") as log:
        intake = subprocess.Popen(
            [sys.executable, "-m", "services.intake"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/readyz", time.monotonic() + 60)
        workers = children_of(intake.pid)
        assert len(workers) >= 2, log_path.read_text()[-2000:]
        # BRINK_NICENESS lowers the priority of the whole service, its worker processes included.
        assert {niceness_of(pid) for pid in [intake.pid, *workers]} == {os.nice(0) + 7}
        channel = await connection.channel()
        exchange = await channel.declare_exchange("brink.events", aio_pika.ExchangeType.TOPIC, passive=True)
        watch = await channel.declare_queue("", exclusive=True)
        await watch.bind(exchange, "cancellation.received")

        requests = [
            signed(stripe_event("customer.subscription.deleted", stripe_subscription()), STRIPE_SECRET)
            for _ in range(WEBHOOKS)
        ]
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=httpx.Limits(max_connections=24)
        ) as client:
            answers = await asyncio.gather(
                *(client.post("/webhooks/stripe", content=body, headers=headers) for body, headers in requests)
            )
        assert [a.json()["outcome"] for a in answers] == ["accepted"] * WEBHOOKS

        # Every scrape, whichever process answers it, counts the webhooks both processes took.
        assert [accepted_in_metrics(port) for _ in range(6)] == [WEBHOOKS] * 6

        published: list[str] = []
        deadline = time.monotonic() + 30
        while len(published) < WEBHOOKS and time.monotonic() < deadline:
            message = await watch.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            published.append(message.message_id or "")
        await asyncio.sleep(1.0)  # a second relay publishing a row again would show up now
        while (message := await watch.get(no_ack=True, fail=False)) is not None:
            published.append(message.message_id or "")
        assert len(published) == WEBHOOKS and len(set(published)) == WEBHOOKS
    finally:
        intake.send_signal(signal.SIGTERM)
        code = intake.wait(timeout=30)
        await connection.close()
    assert code == 0, log_path.read_text()[-2000:]
