"""Fixtures of the cluster tests: one ClickHouse cluster per session (scripts/cluster.sh) and proxies in front of
it with `[[nodes]]` configs of each test's choosing."""

from __future__ import annotations

import pytest

from support.cluster import ClickHouseCluster
from support.servers import DIRECT_MODE, ProxyProcess


@pytest.fixture(scope="session")
def ch_cluster(tmp_path_factory):
    if DIRECT_MODE:
        pytest.skip("the cluster tests test the proxy's routing (AURORA_TEST_DIRECT=1)")
    cluster = ClickHouseCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_proxy(ch_cluster, tmp_path):
    """Factory: cluster_proxy(balance, **settings) -> a started ProxyProcess over the three nodes, probing every
    300 ms (a node is out after 2 failed probes and back after 2 good ones); stopped and checked at teardown."""
    started = []

    def start(balance: str = "least_connections", roles: dict | None = None, **settings) -> ProxyProcess:
        lines = [
            f'balance = "{balance}"',
            'health_interval = "300ms"',
            'health_timeout = "1s"',
            'connect_timeout = "1s"',
            "unhealthy_after = 2",
            "healthy_after = 2",
            'ask_feedback_table = "none"',
        ]
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
        config = tmp_path / f"proxy-{len(started)}.toml"
        config.write_text("\n".join(lines) + "\n\n" + ch_cluster.nodes_toml(roles))
        # upstream_* are unused with [[nodes]]; they point at node 1 so that a mistake would show.
        p = ProxyProcess(
            f"127.0.0.1:{ch_cluster.native_port(1)}",
            f"http://127.0.0.1:{ch_cluster.http_port(1)}",
            tmp_path,
            ("--config", str(config)),
        )
        p.start()
        started.append(p)
        return p

    yield start
    problems = [problem for p in started if (problem := p.stop()) is not None]
    assert not problems, "\n".join(problems)
