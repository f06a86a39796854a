"""A private three-node RabbitMQ cluster on this machine, which the cluster fault run may kill, restart and cut off.

Each node has its own name, AMQP and distribution ports, data directory and Erlang cookie (a home directory of
the cluster's own), and registers with the machine's epmd under a unique name. The shared node (``rabbit@…`` on
5672) is never touched. Each node opens its inter-node connections from an address of its own on the loopback
network (127.23.0.N), so a firewall table of the run's own can drop the traffic between one node and the others
while clients and the command-line tools still reach every node: a partition on loopback only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.infra import CLI_PORT_RANGE, RABBITMQ_BIN, _as_user, _owned_tmpdir, free_port, wait_for_port
from tests.chaos.reaper import Will, start_watcher
from tests.commands import run_bounded

NFT = shutil.which("nft") or "/usr/sbin/nft"


@dataclass
class Node:
    """One RabbitMQ node of the cluster."""

    index: int
    name: str
    port: int
    dist_port: int
    base: Path
    running: bool = False

    @property
    def source_address(self) -> str:
        """The loopback address this node's connections to other nodes come from."""
        return f"127.23.0.{self.index + 1}"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        try:
            return int((self.base / "pid").read_text().strip())
        except (OSError, ValueError):
            return None


@dataclass
class RabbitCluster:
    """Three nodes joined into one cluster, each with its own everything; cleaned up however the run ends."""

    size: int = 3
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.base = _owned_tmpdir(f"brink-cluster-{self.id}-", "rabbitmq")
        self.prefix, _ = _as_user("rabbitmq")
        self.home = self.base / "home"
        self.home.mkdir()
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        (self.base / "enabled_plugins").write_text("[].\n")
        self.firewall_table = f"brink_cluster_{self.id}"
        for index in range(self.size):
            base = self.base / f"node{index + 1}"
            base.mkdir()
            node = Node(
                index=index,
                name=f"brink-cluster-{self.id}-{index + 1}@localhost",
                port=free_port(),
                dist_port=free_port(),
                base=base,
            )
            # The default net_ticktime (60 s): a 20 s partition is not long enough for the nodes to declare each other
            # down (so pause_minority does not act), while the quorum queues' own failure detector moves their
            # leaders to the majority within seconds. With net_ticktime 10 the cut-off node paused and, on
            # RabbitMQ 3.10.8 with Erlang 25.2.3, hung in its boot after the heal (README, cluster-chaos).
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.port}\n"
                "loopback_users = none\n"
                "cluster_partition_handling = pause_minority\n"
                "disk_free_limit.absolute = 50MB\n"
            )
            (base / "advanced.config").write_text(
                f"[{{kernel, [{{inet_dist_connect_options, [{{ip, {{127,23,0,{index + 1}}}}}]}}]}}].\n"
            )
            self.nodes.append(node)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=False, capture_output=True)

    # --- the nodes -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``BRINK_AMQP_URL`` for the whole cluster: every node, comma-separated."""
        return "amqp://guest:guest@" + ",".join(node.address for node in self.nodes) + "/"

    def _env(self, node: Node) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_PID_FILE": str(node.base / "pid"),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(node.base / "rabbitmq-env.conf"),
            **CLI_PORT_RANGE,
            # Three nodes share two cores with everything else: schedulers must not spin while idle.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none",
        }

    def tool(self, tool: str, node: Node, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl`` (or ``rabbitmq-queues``, …) against one node, with the cluster's cookie."""
        return run_bounded(
            [*self.prefix, "env", f"HOME={self.home}", str(RABBITMQ_BIN / tool), "-n", node.name, *args],
            env=self._env(node),
            timeout=timeout,
            # Run as rabbitmq, in a directory it owns: from a checkout it may not read (a clone in a private
            # temporary directory) Erlang wrote "eacces" error reports into the output, and no cluster_status
            # parsed, so the cluster was never seen whole.
            cwd=self.base,
        )

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.tool("rabbitmqctl", node, *args, timeout=timeout)

    def _checked(self, result: subprocess.CompletedProcess[str], what: str) -> str:
        if result.returncode != 0:
            raise RuntimeError(f"{what} failed: {(result.stderr or result.stdout).strip()[-500:]}")
        return result.stdout

    def start_node(self, node: Node) -> None:
        """Start one node (detached) and wait until it has booted and listens for clients."""
        node.running = True  # from here on the cleanup ends it, whatever happens next
        subprocess.run(
            # runuser resets HOME to the user's own, where the machine's cookie is: set it again, to ours.
            [*self.prefix, "env", f"HOME={self.home}", str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self._env(node),
            check=True,
            capture_output=True,
            timeout=60,
            cwd=node.base,
        )
        self.ctl(node, "wait", str(node.base / "pid"), "--timeout", "120", timeout=150)
        self._checked(self.ctl(node, "await_startup", "--timeout", "120", timeout=150), f"{node.name} start")
        wait_for_port(node.port, timeout=60)

    def start(self) -> None:
        """Boot the nodes, then join the second and third to the first."""
        # The nodes run detached: if this process dies without cleaning up, the watcher ends them (a clean exit
        # removes the whole directory, marker included, and the watcher with it).
        start_watcher(
            Will(
                marker=str(self.base / "watched"),
                processes=[str(self.base / "node*" / "pid")],
                nft_table=self.firewall_table,
                nft=NFT,
                remove=[str(self.base)],
            )
        )
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(self.start_node, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self._checked(self.ctl(node, "stop_app"), f"{node.name} stop_app")
            self._checked(self.ctl(node, "join_cluster", first.name, timeout=120), f"{node.name} join")
            self._checked(self.ctl(node, "start_app", timeout=150), f"{node.name} start_app")
        self.wait_until_whole(timeout=120)

    def stop_node(self, node: Node) -> None:
        """A clean stop, as an upgrade does it."""
        self._checked(self.ctl(node, "stop", timeout=120), f"{node.name} stop")
        node.running = False
        wait_for_port(node.port, timeout=60, up=False)
        (node.base / "pid").unlink(missing_ok=True)  # a pid of the past, which the watcher must not kill

    def kill_node(self, node: Node) -> int:
        """SIGKILL the node's Erlang VM: no shutdown at all."""
        pid = node.pid()
        assert pid is not None, f"{node.name} has no pid file"
        os.kill(pid, signal.SIGKILL)
        node.running = False
        wait_for_port(node.port, timeout=30, up=False)
        (node.base / "pid").unlink(missing_ok=True)  # a pid of the past, which the watcher must not kill
        return pid

    def first_answer(self, tool: str, *args: str, what: str, timeout: float = 60) -> str:
        """The output of ``tool`` from the first running node that answers. Each call starts an Erlang VM (about
        1.5 s of a core on a busy two-core machine), so no separate call first asks which node is up."""
        errors = []
        for node in self.nodes:
            if node.running:
                result = self.tool(tool, node, *args, timeout=timeout)
                if result.returncode == 0:
                    return result.stdout
                errors.append(f"{node.name}: {(result.stderr or result.stdout).strip()[-200:]}")
        raise RuntimeError(f"{what}: no node of the private cluster answers ({'; '.join(errors) or 'none running'})")

    def cluster_view(self, node: Node) -> tuple[list[str], dict[str, list[str]]]:
        """The nodes ``node`` sees running, and the partitions it reports, from one ``cluster_status``."""
        status = json.loads(self._checked(self.ctl(node, "cluster_status", "--formatter", "json"), "cluster_status"))
        return sorted(status.get("running_nodes", [])), status.get("partitions") or {}

    def wait_until_whole(self, *, timeout: float) -> float:
        """Wait until every node runs, every one sees all the others and none reports a partition; seconds taken.
        The nodes are asked at once, one ``cluster_status`` each, rather than one after the other."""
        started = time.monotonic()
        expected = sorted(node.name for node in self.nodes)
        with ThreadPoolExecutor(self.size) as pool:
            while True:
                try:
                    views = list(pool.map(self.cluster_view, self.nodes))
                    if all(running == expected and not partitions for running, partitions in views):
                        return time.monotonic() - started
                except (RuntimeError, subprocess.SubprocessError, ValueError):
                    pass
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"the private cluster is not whole after {timeout:.0f}s")
                time.sleep(0.5)

    # --- queues ---------------------------------------------------------------------------------------------

    def queues(self) -> list[dict[str, object]]:
        """Every queue with its messages, leader and members, as the first node that answers reports them."""
        columns = ("name", "messages", "leader", "members")
        listed = self.first_answer(
            "rabbitmqctl", "list_queues", *columns, "--formatter", "json", what="list_queues", timeout=90
        )
        return json.loads(listed)

    def queue_depths(self) -> dict[str, int]:
        return {str(queue["name"]): int(queue.get("messages") or 0) for queue in self.queues()}

    def leaders(self) -> Counter[str]:
        """How many queue leaders each node holds."""
        return Counter(str(queue.get("leader") or "none") for queue in self.queues())

    def node_named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def rebalance(self) -> None:
        """Spread the quorum queue leaders over the nodes again (after restarts they gather on the survivors)."""
        self.first_answer("rabbitmq-queues", "rebalance", "quorum", what="rebalance", timeout=120)

    def quorum_critical(self, node: Node) -> bool:
        """Whether stopping ``node`` now would leave some quorum queue without a majority."""
        return self.tool("rabbitmq-queues", node, "check_if_node_is_quorum_critical", timeout=60).returncode != 0

    # --- the partition --------------------------------------------------------------------------------------

    def cut_off(self, node: Node) -> None:
        """Drop every packet between ``node`` and the other nodes (both directions, both who-dialled-whom)."""
        others = [other for other in self.nodes if other is not node]
        addresses = ", ".join(other.source_address for other in others)
        ports = ", ".join(str(other.dist_port) for other in others)
        table = self.firewall_table
        rules = [
            f"add table inet {table}",
            f"add chain inet {table} input {{ type filter hook input priority -10; policy accept; }}",
            f"add rule inet {table} input ip saddr {{ {addresses} }} tcp dport {node.dist_port} drop",
            f"add rule inet {table} input ip daddr {{ {addresses} }} tcp sport {node.dist_port} drop",
            f"add rule inet {table} input ip saddr {node.source_address} tcp dport {{ {ports} }} drop",
            f"add rule inet {table} input ip daddr {node.source_address} tcp sport {{ {ports} }} drop",
        ]
        subprocess.run([NFT, "-f", "-"], input="\n".join(rules) + "\n", text=True, check=True, capture_output=True)

    def heal(self) -> None:
        subprocess.run([NFT, "delete", "table", "inet", self.firewall_table], check=False, capture_output=True)

    # --- the end --------------------------------------------------------------------------------------------

    def cleanup(self) -> None:
        """SIGKILL every node: their data goes with the directory, so a clean stop (seconds a node, longer for the
        last one, which waits for its peers) would buy nothing."""
        self.heal()
        for node in self.nodes:
            if not node.running:
                continue
            pid = node.pid()
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            else:  # booting, before its pid file: stop it through the tools
                with contextlib.suppress(Exception):
                    self.ctl(node, "stop", timeout=30)
            node.running = False
        for node in self.nodes:  # gone before their directories go
            with contextlib.suppress(TimeoutError):
                wait_for_port(node.port, timeout=10, up=False)
        shutil.rmtree(self.base, ignore_errors=True)
