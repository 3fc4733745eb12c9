"""Fixtures of the ingest tests (defined in support/ingest_fixtures.py, shared with tests/security):
`kafka` (Apache Kafka, or tansu with AURORA_KAFKA=tansu, for the session), `topic` (a fresh 3-partition topic),
`start_ingest` (aurora-ingest daemons with an API token each), `ch` (a clickhouse-driver Client on the session
ClickHouse)."""

import pytest

from support.ingest_fixtures import ch, ingest_binary_present, kafka, start_ingest, topic  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _ingest_binary_present(ingest_binary_present):  # noqa: F811
    """Every test here runs the daemon: a missing binary fails the session at once."""
