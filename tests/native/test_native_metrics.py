"""The proxy's Prometheus metrics after native traffic (names live in support/metric_names.py)."""

from __future__ import annotations

import re
import urllib.request

import pytest

from support import metric_names
from support.cli import clickhouse_client
from support.driver import connect

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([0-9.eE+-]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(endpoint) -> str:
    with urllib.request.urlopen(f"http://{endpoint.host}:{endpoint.metrics_port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def sample_value(text: str, wanted) -> float:
    """Sum of the samples named wanted[0] whose labels include wanted[1]."""
    name, labels = wanted
    found = [
        float(m.group(3))
        for line in text.splitlines()
        if (m := SAMPLE.match(line)) and m.group(1) == name
        and labels.items() <= dict(LABEL.findall(m.group(2) or "")).items()
    ]
    assert found, f"no sample {name}{labels} in /metrics:\n{text}"
    return sum(found)


@pytest.mark.proxy_only
def test_metrics_after_queries(proxy):
    client = connect(proxy)
    for i in range(3):
        assert client.execute(f"SELECT {i}") == [(i,)]
    client.disconnect()

    text = scrape(proxy)
    assert sample_value(text, metric_names.NATIVE_CONNECTIONS_TOTAL) >= 1
    assert sample_value(text, metric_names.QUERIES_SQL_OK) >= 3


@pytest.mark.proxy_only
def test_an_unframeable_column_turns_the_connection_into_a_byte_relay(start_proxy, direct):
    """AggregateFunction states are not self-describing: the proxy stops framing that one connection, relays
    its bytes as they are (the client sees exactly what ClickHouse sent) and counts it."""
    p = start_proxy(f"127.0.0.1:{direct.native_port}", direct.http_url)
    query = "SELECT number % 3 AS k, uniqState(number) FROM numbers(100) GROUP BY k ORDER BY k FORMAT TSV; SELECT 42"
    through = clickhouse_client(p.endpoint, "--multiquery", query=query)
    straight = clickhouse_client(direct, "--multiquery", query=query)
    assert through.returncode == 0, through.stderr
    assert through.stdout == straight.stdout
    assert through.stdout.endswith(b"42\n")
    metrics = scrape(p.endpoint)
    assert sample_value(metrics, ("aurora_proxy_native_passthrough_total", {"reason": "unframeable"})) == 1
    # Other connections are still framed (and their queries counted).
    assert connect(p.endpoint).execute("SELECT 1") == [(1,)]
    assert sample_value(scrape(p.endpoint), metric_names.QUERIES_SQL_OK) >= 1
