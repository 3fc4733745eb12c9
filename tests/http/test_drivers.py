"""Real HTTP drivers through the proxy: clickhouse-connect (Python) queries and inserts, answers compared with
the same calls made directly."""

from __future__ import annotations

import datetime

import clickhouse_connect
import pytest


def connect(endpoint, **kwargs):
    return clickhouse_connect.get_client(host=endpoint.host, port=endpoint.http_port, **kwargs)


@pytest.fixture
def clients(proxy, direct):
    # 18.16 knows gzip but not lz4/zstd (clickhouse-connect's default): gzip both ways, through the proxy untouched.
    through, reference = connect(proxy, compress="gzip"), connect(direct, compress="gzip")
    yield through, reference
    through.close()
    reference.close()


def test_clickhouse_connect_queries_agree(clients, table):
    through, reference = clients
    assert through.server_version == reference.server_version
    query = f"SELECT id, i, f, s, d, dt, a, n, fs, e, u FROM {table} ORDER BY id"
    got, want = through.query(query), reference.query(query)
    assert got.column_names == want.column_names
    assert got.result_rows == want.result_rows
    assert len(got.result_rows) == 1000
    assert through.command("SELECT 1 + 1") == 2


def test_clickhouse_connect_insert_and_read_back(clients, db, direct):
    through, reference = clients
    through.command(f"CREATE TABLE {db}.events (id UInt32, name String, at DateTime) ENGINE = MergeTree ORDER BY id")
    rows = [(i, f"event-{i}", datetime.datetime(2024, 1, 1) + datetime.timedelta(minutes=i)) for i in range(20_000)]
    # With the types given, clickhouse-connect skips its DESCRIBE (whose 18.16 columns it cannot read).
    through.insert(f"{db}.events", rows, column_names=["id", "name", "at"],
                   column_type_names=["UInt32", "String", "DateTime"])
    assert reference.query(f"SELECT count(), sum(id) FROM {db}.events").result_rows == [(20_000, sum(range(20_000)))]
    back = through.query(f"SELECT id, name, at FROM {db}.events ORDER BY id LIMIT 3").result_rows
    assert back == [tuple(r) for r in rows[:3]]


def test_clickhouse_connect_with_a_password(proxy):
    client = connect(proxy, username="alice", password="alice-secret")
    try:
        assert client.command("SELECT 42") == 42
    finally:
        client.close()
    with pytest.raises(Exception) as refused:
        connect(proxy, username="alice", password="wrong")
    assert "193" in str(refused.value) or "password" in str(refused.value).lower()


def test_clickhouse_connect_settings_and_parameters(clients):
    through, reference = clients
    # 18.16 has no server-side query parameters: clickhouse-connect binds %(name)s on the client.
    query = "SELECT number FROM numbers(100) WHERE number > %(low)s ORDER BY number"
    args = {"parameters": {"low": 90}, "settings": {"max_threads": 1}}
    assert through.query(query, **args).result_rows == reference.query(query, **args).result_rows
