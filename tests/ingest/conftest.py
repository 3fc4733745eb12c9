"""Fixtures of the ingest tests: a real Kafka-compatible broker (tansu), aurora-ingest daemons, topics.

- `kafka`: one tansu broker for the session (scripts/kafka.sh, free port, in-memory storage).
- `topic`: a fresh 3-partition topic for one test.
- `start_ingest`: factory starting aurora-ingest daemons against the session ClickHouse (or another), stopped
  with SIGTERM at teardown (a daemon that ignores it fails the test).
- `ch`: a clickhouse-driver Client on the session ClickHouse.
"""

from __future__ import annotations

import uuid

import pytest
from clickhouse_driver import Client

from support.ingest import Broker, IngestDaemon, ingest_binary


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session", autouse=True)
def _ingest_binary_present():
    if not ingest_binary().exists():
        pytest.fail(f"{ingest_binary()} missing: run `cargo build -p aurora-ingest` (or set AURORA_INGEST_BIN)")


@pytest.fixture
def topic(kafka):
    name = f"events_{uuid.uuid4().hex[:10]}"
    kafka.create_topic(name, 3)
    return name


@pytest.fixture
def ch(direct):
    client = Client(direct.host, port=direct.native_port)
    yield client
    client.disconnect()


@pytest.fixture
def start_ingest(tmp_path, direct, kafka):
    """start_ingest(pipelines, kafka=None, clickhouse_http=None, env=None) -> a running IngestDaemon."""
    started = []

    def start(pipelines, kafka_conf=None, clickhouse_http=None, env=None) -> IngestDaemon:
        d = IngestDaemon(
            tmp_path,
            clickhouse_http or direct.http_url,
            kafka_conf or {"brokers": kafka.brokers},
            pipelines,
            env,
        )
        d.start()
        started.append(d)
        return d

    yield start
    problems = [problem for d in started if (problem := d.stop()) is not None]
    assert not problems, "\n".join(problems)
