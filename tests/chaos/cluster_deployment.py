"""What ``make cluster-chaos`` runs Brink on: a private three-node RabbitMQ cluster, a private PostgreSQL and two
instances of every service, started side by side where they do not depend on each other, and cleaned up however
the run ends (a watcher process covers the exits that skip the cleanup)."""

from __future__ import annotations

import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared.migrate import upgrade
from tests.chaos.cluster import NFT, RabbitCluster
from tests.chaos.infra import PrivatePostgres, free_port
from tests.chaos.processes import ServiceProcess, fault_run_env, start_all, stop_all
from tests.chaos.reaper import Will, stand_down, start_watcher

SERVICES = ("intake", "diagnosis", "outreach")


class Deployment:
    """The private cluster and database, and two instances of every service; cleaned up however the run ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rabbit = RabbitCluster()
        self.postgres = PrivatePostgres()
        self.secret = "whsec_chaos_" + uuid.uuid4().hex
        self.token = "chaos-token-" + uuid.uuid4().hex
        self.services: dict[str, ServiceProcess] = {}
        self.seconds: dict[str, float] = {}  # how long each part of the start took
        self.will = Will(
            marker=str(workdir / "watched"),
            groups=[str(workdir / "*.pid")],
            postgres=[str(self.postgres.data)],
            nft_table=self.rabbit.firewall_table,
            nft=NFT,
            remove=[str(self.postgres.base)],
        )
        self._cleaned = False

    def start(self) -> None:
        start_watcher(self.will)
        with ThreadPoolExecutor(1) as pool:
            # The database and its migrations need no broker: they run while the nodes boot and join.
            database = pool.submit(self._start_database)
            clock = time.monotonic()
            self.rabbit.start()
            self.seconds["cluster"] = time.monotonic() - clock
            database.result()
        env = fault_run_env(
            database_url=self.postgres.url,
            amqp_url=self.rabbit.url,
            api_token=self.token,
            webhook_secret=self.secret,
        )
        for service in SERVICES:
            for instance in (1, 2):
                process = ServiceProcess(
                    service=service, instance=instance, port=free_port(), env=env, workdir=self.workdir
                )
                self.services[process.label] = process
        clock = time.monotonic()
        # The first instance of every service side by side, then the second ones: each service's queues are
        # declared (their leaders elected) by one process before another declares and consumes them too.
        for instance in (1, 2):
            start_all(process for process in self.services.values() if process.instance == instance)
        self.seconds["services"] = time.monotonic() - clock

    def _start_database(self) -> None:
        clock = time.monotonic()
        self.postgres.start()
        upgrade(self.postgres.url)
        self.seconds["database"] = time.monotonic() - clock

    def webhook_urls(self) -> list[str]:
        return [f"{p.base_url}/webhooks/stripe" for p in self.services.values() if p.service == "intake"]

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        with contextlib.suppress(Exception):  # keep cleaning up the rest
            stop_all(self.services.values())
        self.rabbit.cleanup()
        self.postgres.cleanup()
        stand_down(self.will)
