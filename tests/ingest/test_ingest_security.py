"""aurora-ingest against a broker that requires TLS and SASL SCRAM-SHA-512 (nisshi, the only broker installable
here with both). Skipped, with the reason, where the nisshi binary is absent."""

from __future__ import annotations

import time

import pytest

from support.events import envelope_messages, produce
from support.ingest import SecureBroker, nisshi_binary, wait_until

TOPICS = ["secure_events", "secure_denied"]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    binary = nisshi_binary()
    if binary is None:
        pytest.skip("nisshi 0.8 not available (../shared/testbin/nisshi-0.8.1-x86_64-linux.gz or AURORA_NISSHI_BIN): "
                    "SASL/TLS tests need a broker with TLS and SCRAM")
    broker = SecureBroker(binary, tmp_path_factory.mktemp("nisshi"))
    broker.start(TOPICS)
    yield broker
    broker.stop()


def kafka_conf(broker, password_env="AURORA_TEST_KAFKA_PASSWORD"):
    return {
        "brokers": broker.brokers,
        "security_protocol": "sasl_ssl",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": broker.USER,
        "sasl_password_env": password_env,
        "ssl_ca_file": str(broker.ca),
    }


@pytest.mark.timeout(120)
def test_scram_over_tls_delivers_and_keeps_the_secret_out_of_logs(secure_broker, db, ch, start_ingest):
    total = 20_000
    produce(secure_broker.brokers, TOPICS[0], envelope_messages(total, seed=7),
            extra=secure_broker.client_config())
    table = f"{db}.events"
    daemon = start_ingest([{"name": "secure", "topics": [TOPICS[0]], "table": table}],
                          kafka_conf=kafka_conf(secure_broker),
                          env={"AURORA_TEST_KAFKA_PASSWORD": secure_broker.PASSWORD})
    wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= total, 60, "all rows")
    assert tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0]) == (total, total)
    assert secure_broker.PASSWORD not in daemon.log(10_000)
    assert secure_broker.PASSWORD not in daemon.config_path.read_text(), "the secret came from the environment"


@pytest.mark.timeout(90)
def test_wrong_password_reads_nothing(secure_broker, db, ch, start_ingest):
    produce(secure_broker.brokers, TOPICS[1], envelope_messages(1000, seed=8), extra=secure_broker.client_config())
    table = f"{db}.denied"
    daemon = start_ingest([{"name": "denied", "topics": [TOPICS[1]], "table": table}],
                          kafka_conf=kafka_conf(secure_broker),
                          env={"AURORA_TEST_KAFKA_PASSWORD": "not-the-password"})
    wait_until(lambda: (daemon.pipeline("denied")["last_error"] or "").startswith("Kafka:"), 30,
               "a Kafka error as the pipeline's last error")
    assert "Authentication failure" in daemon.log(2000)
    time.sleep(3)
    # The table exists (created at start), yet nothing was read.
    assert ch.execute(f"SELECT count() FROM {table}")[0][0] == 0
    assert daemon.pipeline("denied")["rows_inserted"] == 0
