"""A local ClickHouse 18.16 cluster (scripts/cluster.sh: ZooKeeper and three replicas of one shard) and the
proxy metrics the cluster tests read."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

from support.servers import HOST

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
NODES = (1, 2, 3)


def _ports_free(ports) -> bool:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def free_base_port() -> int:
    """A base port whose whole block (base, base+10..base+32) is free now."""
    for base in range(31000, 60000, 97):
        if _ports_free([base] + [base + 10 * i + k for i in NODES for k in range(3)]):
            return base
    raise RuntimeError("no free block of ports for the test cluster")


class ClickHouseCluster:
    """The cluster under `directory`; nodes are named ch1..ch3 as in its macros."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.base = free_base_port()

    def _run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        self._run("start", str(self.directory), str(self.base))

    def stop(self) -> None:
        self._run("stop", str(self.directory))

    def kill(self, node: int) -> None:
        """SIGKILL node `node` (1..3); returns once the process is gone."""
        self._run("kill", str(self.directory), str(node))

    def restart(self, node: int) -> None:
        self._run("restart", str(self.directory), str(node))

    def native_port(self, node: int) -> int:
        return self.base + 10 * node

    def http_port(self, node: int) -> int:
        return self.base + 10 * node + 1

    def nodes_toml(self, roles: dict | None = None) -> str:
        """`[[nodes]]` tables for the three nodes (role `any` unless `roles` says otherwise)."""
        out = []
        for node in NODES:
            out.append(
                "[[nodes]]\n"
                f'name = "ch{node}"\n'
                f'native = "{HOST}:{self.native_port(node)}"\n'
                f'http = "http://{HOST}:{self.http_port(node)}"\n'
                f'role = "{(roles or {}).get(node, "any")}"\n'
                "shard = 1\n"
            )
        return "\n".join(out)

    def query(self, node: int, sql: str) -> str:
        """`sql` on node `node` directly over HTTP."""
        request = urllib.request.Request(
            f"http://{HOST}:{self.http_port(node)}/", data=sql.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()


#: The query that names the node answering it (each node's `replica` macro is its name).
WHO = "SELECT substitution FROM system.macros WHERE macro = 'replica'"


def scrape(metrics_port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://{HOST}:{metrics_port}{path}", timeout=10) as response:
        return response.read().decode()


def metric(text: str, name: str, **labels) -> float:
    """Sum of the samples of `name` in `text` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
