"""Fixtures of the tests that run aurora-ingest (tests/ingest, tests/security), imported by their conftest.py:
a real Kafka broker, aurora-ingest daemons, topics.

- `kafka`: one broker per session and folder (scripts/kafka.sh, free ports): Apache Kafka 4 (KRaft, storage
  formatted per run), or tansu in memory with AURORA_KAFKA=tansu.
- `topic`: a fresh 3-partition topic for one test.
- `start_ingest`: factory starting aurora-ingest daemons against the session ClickHouse (or another), each with an
  API token of its own unless `token=None`, stopped with SIGTERM at teardown (a daemon that ignores it fails the test).
- `ch`: a clickhouse-driver Client on the session ClickHouse.
"""

from __future__ import annotations

import uuid

import pytest
from clickhouse_driver import Client

from support.ingest import AUTO, IngestDaemon, ingest_binary, make_broker


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    broker = make_broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def ingest_binary_present():
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
def start_ingest(tmp_path, direct, kafka, ingest_binary_present):
    """start_ingest(pipelines, kafka_conf=None, clickhouse_http=None, env=None, token=AUTO, extra_config=None)
    -> a running IngestDaemon. `extra_config`: more top-level TOML lines."""
    started = []

    def start(pipelines, kafka_conf=None, clickhouse_http=None, env=None, token=AUTO, extra_config=None) -> IngestDaemon:
        d = IngestDaemon(
            tmp_path,
            clickhouse_http or direct.http_url,
            kafka_conf or {"brokers": kafka.brokers},
            pipelines,
            env,
            token=token,
            extra_config=extra_config,
        )
        d.start()
        started.append(d)
        return d

    yield start
    problems = [problem for d in started if (problem := d.stop()) is not None]
    assert not problems, "\n".join(problems)
