"""aurora-ingest against Apache Kafka's SASL_SSL listener (scripts/kafka.sh apache-start --sasl-ssl): TLS with a CA
made for this run, and SASL with SCRAM-SHA-512 (credential added at format time) or PLAIN. The broker's plaintext
listener is used only by the test to create topics."""

from __future__ import annotations

import time

import pytest

from support.events import envelope_messages, produce
from support.ingest import ApacheBroker, wait_until

TOPICS = ["secure_scram", "secure_plain", "secure_denied", "secure_untrusted"]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    broker = ApacheBroker(tmp_path_factory.mktemp("kafka-sasl"), sasl_ssl=True)
    broker.start()
    try:
        for t in TOPICS:
            broker.create_topic(t, 3)
        yield broker
    finally:
        broker.stop()


def kafka_conf(broker, mechanism="SCRAM-SHA-512", password_env="AURORA_TEST_KAFKA_PASSWORD", ca=None):
    return {
        "brokers": broker.sasl_brokers,
        "security_protocol": "sasl_ssl",
        "sasl_mechanism": mechanism,
        "sasl_username": broker.USER,
        "sasl_password_env": password_env,
        "ssl_ca_file": str(ca or broker.ca),
    }


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mechanism,topic", [("SCRAM-SHA-512", TOPICS[0]), ("PLAIN", TOPICS[1])])
def test_sasl_over_tls_delivers_and_keeps_the_secret_out_of_logs(secure_broker, mechanism, topic, db, ch,
                                                                 start_ingest):
    total = 20_000
    produce(secure_broker.sasl_brokers, topic, envelope_messages(total, seed=7),
            extra=secure_broker.client_config(mechanism=mechanism))
    table = f"{db}.events"
    daemon = start_ingest([{"name": "secure", "topics": [topic], "table": table}],
                          kafka_conf=kafka_conf(secure_broker, mechanism),
                          env={"AURORA_TEST_KAFKA_PASSWORD": secure_broker.PASSWORD})
    wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= total, 90, "all rows")
    assert tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0]) == (total, total)
    wait_until(lambda: daemon.pipeline("secure")["lag"] == 0, 30, "lag 0")
    assert secure_broker.PASSWORD not in daemon.log(10_000)
    assert secure_broker.PASSWORD not in daemon.config_path.read_text(), "the secret came from the environment"


@pytest.mark.timeout(90)
def test_wrong_password_reads_nothing(secure_broker, db, ch, start_ingest):
    produce(secure_broker.sasl_brokers, TOPICS[2], envelope_messages(1000, seed=8),
            extra=secure_broker.client_config())
    table = f"{db}.denied"
    daemon = start_ingest([{"name": "denied", "topics": [TOPICS[2]], "table": table}],
                          kafka_conf=kafka_conf(secure_broker),
                          env={"AURORA_TEST_KAFKA_PASSWORD": "not-the-password"})
    wait_until(lambda: (daemon.pipeline("denied")["last_error"] or "").startswith("Kafka:"), 30,
               "a Kafka error as the pipeline's last error")
    assert "Authentication failed" in daemon.log(2000)
    time.sleep(3)
    # The table exists (created at start), yet nothing was read.
    assert ch.execute(f"SELECT count() FROM {table}")[0][0] == 0
    assert daemon.pipeline("denied")["rows_inserted"] == 0


@pytest.mark.timeout(90)
def test_a_certificate_from_another_ca_is_refused(secure_broker, tmp_path, db, ch, start_ingest):
    """The daemon checks the broker's certificate: with the CA of another run it reads nothing."""
    import subprocess

    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "o.key"),
                    "-out", str(other_ca), "-days", "1", "-subj", "/CN=not-the-broker-ca"],
                   check=True, capture_output=True, timeout=60)
    produce(secure_broker.sasl_brokers, TOPICS[3], envelope_messages(500, seed=9),
            extra=secure_broker.client_config())
    table = f"{db}.untrusted"
    daemon = start_ingest([{"name": "untrusted", "topics": [TOPICS[3]], "table": table}],
                          kafka_conf=kafka_conf(secure_broker, ca=other_ca),
                          env={"AURORA_TEST_KAFKA_PASSWORD": secure_broker.PASSWORD})
    wait_until(lambda: (daemon.pipeline("untrusted")["last_error"] or "").startswith("Kafka:"), 30,
               "a Kafka error as the pipeline's last error")
    assert "certificate verify failed" in daemon.log(2000)
    assert ch.execute(f"SELECT count() FROM {table}")[0][0] == 0
