"""aurora-ingest delivery against a real broker (Apache Kafka; tansu with AURORA_KAFKA=tansu) and the real
ClickHouse: exactly once, dead letters, crashes of the daemon at any moment and in the window between insert and
commit."""

from __future__ import annotations

import json

import pytest

from support.events import envelope_messages, event_id, produce
from support.ingest import wait_until


def pipeline(name, topic, table, **extra):
    spec = {"name": name, "topics": [topic], "table": table, "batch_max_wait": "300ms"}
    spec.update(extra)
    return spec


def count_distinct(ch, table):
    return tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0])


def wait_for_rows(ch, table, n, timeout):
    return wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= n, timeout, f"{n} rows in {table}")


@pytest.mark.timeout(150)
def test_100k_events_over_3_partitions_arrive_exactly_once(kafka, topic, db, ch, start_ingest):
    produced = produce(kafka.brokers, topic, envelope_messages(100_000, seed=1))
    assert produced == 100_000
    table = f"{db}.events"
    daemon = start_ingest([pipeline("p100k", topic, table, batch_max_rows=20_000)])
    wait_for_rows(ch, table, 100_000, 90)
    # Everything committed: the pipeline reads nothing more, and nothing more arrives.
    wait_until(lambda: daemon.pipeline("p100k")["lag"] == 0, 20, "lag 0")
    assert count_distinct(ch, table) == (100_000, 100_000)
    per_partition = ch.execute(
        f"SELECT `partition`, min(first_offset), max(last_offset), sum(rows) FROM {db}.aurora_ingest_ledger "
        f"WHERE pipeline = 'p100k' GROUP BY `partition` ORDER BY `partition`"
    )
    assert [p for p, *_ in per_partition] == [0, 1, 2]
    assert sum(rows for *_, rows in per_partition) == 100_000
    for _, first, last, rows in per_partition:
        assert first == 0 and last + 1 == rows, per_partition
    # The rows are the events that were sent, column by column (spot check through the mapping).
    sample = ch.execute(
        f"SELECT toString(event_id), event_type, tenant_id, user_id, revenue, schema_version, payload "
        f"FROM {table} WHERE event_id IN (toUUID('{event_id(7, 1)}'), toUUID('{event_id(99_999, 1)}')) "
        f"ORDER BY toString(event_id)"
    )
    from support.events import event

    expected = sorted([event(7, 1), event(99_999, 1)], key=lambda e: e["event_id"])
    for row, e in zip(sample, expected):
        assert row[0] == e["event_id"] and row[1] == e["event_type"] and row[2] == e["tenant_id"]
        assert row[3] == e["payload"]["user_id"]
        assert row[4] == pytest.approx(e["payload"].get("amount", 0.0))
        assert row[5] == 1 and json.loads(row[6]) == e["payload"]
    assert daemon.metric("aurora_ingest_rows_inserted_total", pipeline="p100k") == 100_000
    assert daemon.metric("aurora_ingest_messages_consumed_total", pipeline="p100k") == 100_000
    assert daemon.metric("aurora_ingest_batches_total", pipeline="p100k", outcome="ok") >= 5
    view = daemon.pipeline("p100k")
    assert view["state"] == "running" and view["rows_inserted"] == 100_000 and view["last_error"] is None


POISON = [
    (b"{not json", "not valid JSON"),
    (b"", "empty message"),
    (json.dumps({"event_id": "not-a-uuid", "timestamp": "2026-10-01T00:00:00Z", "event_type": "x",
                 "tenant_id": "t"}).encode(), "column event_id"),
    (json.dumps({"event_id": event_id(5, 9), "timestamp": "2026-10-01T00:00:00Z", "event_type": "x"}).encode(),
     "column tenant_id: required field tenant_id is missing"),
    (json.dumps({"event_id": event_id(6, 9), "timestamp": "yesterday", "event_type": "x",
                 "tenant_id": "t"}).encode(), "column timestamp"),
    (json.dumps({"event_id": event_id(7, 9), "timestamp": "2026-10-01T00:00:00Z", "event_type": "x",
                 "tenant_id": "t", "schema_version": 70000}).encode(), "column schema_version"),
    (json.dumps({"event_id": event_id(8, 9), "timestamp": "2026-10-01T00:00:00Z", "event_type": "x",
                 "tenant_id": "t", "payload": {"amount": "lots"}}).encode(), "column revenue"),
    (b"\xff\xfe\x00binary", "not valid JSON"),
]


@pytest.mark.timeout(120)
def test_poison_messages_go_to_dead_letters_with_their_offsets(kafka, topic, db, ch, start_ingest):
    from confluent_kafka import Producer

    good = list(envelope_messages(3000, seed=2))
    # Interleave: every 300th message is poison; all into partition 1 so offsets are known exactly.
    messages, poison_at = [], {}
    gi = 0
    for n in range(len(good) + len(POISON)):
        if n % 300 == 150 and len(poison_at) < len(POISON):
            raw, why = POISON[len(poison_at)]
            poison_at[n] = (raw, why)
            messages.append((b"k", raw))
        else:
            messages.append(good[gi])
            gi += 1
    assert gi == len(good)
    p = Producer({"bootstrap.servers": kafka.brokers, "linger.ms": 5})
    offsets = {}
    for n, (key, value) in enumerate(messages):
        p.produce(topic, key=key, value=value, partition=1,
                  on_delivery=lambda err, msg, n=n: offsets.__setitem__(n, (err, msg.offset())))
        p.poll(0)
    assert p.flush(30) == 0
    assert all(err is None for err, _ in offsets.values()) and len(offsets) == len(messages)

    table = f"{db}.events"
    daemon = start_ingest([pipeline("poison", topic, table)])
    wait_for_rows(ch, table, len(good), 60)
    dead_table = f"{db}.events_dead_letters"
    wait_until(lambda: ch.execute(f"SELECT count() FROM {dead_table}")[0][0] >= len(POISON), 20, "dead letters")
    assert count_distinct(ch, table) == (len(good), len(good))
    dead = ch.execute(
        f"SELECT topic, `partition`, `offset`, error, raw FROM {dead_table} FINAL ORDER BY `offset`",
        settings={"strings_as_bytes": True},
    )
    assert len(dead) == len(POISON)
    for (t, part, off, error, raw), (n, (sent_raw, why)) in zip(dead, sorted(poison_at.items())):
        assert t.decode() == topic and part == 1
        assert off == offsets[n][1], "the dead letter carries the message's own offset"
        assert raw == sent_raw, "the raw bytes are kept as sent"
        assert why in error.decode(), (error, why)
    view = daemon.pipeline("poison")
    assert view["dead_letters"] == len(POISON) and view["state"] == "running"
    assert daemon.metric("aurora_ingest_dead_letters_total", pipeline="poison") == len(POISON)


@pytest.mark.timeout(180)
def test_kill_9_mid_run_and_restart_keeps_every_event_exactly_once(kafka, topic, db, ch, start_ingest):
    total = 100_000
    produce(kafka.brokers, topic, envelope_messages(total, seed=3))
    table = f"{db}.events"
    spec = [pipeline("crashy", topic, table, batch_max_rows=4000, batch_max_wait="100ms")]
    # Two crashes at arbitrary moments (kill -9 while rows flow)…
    for target in (15_000, 50_000):
        d = start_ingest(spec)
        wait_for_rows(ch, table, target, 60)
        d.kill9()
    # …and one exactly in the window the ledger covers: rows acknowledged by ClickHouse, offsets not committed.
    d = start_ingest(spec, env={"AURORA_INGEST_FAULT_ABORT_AFTER_INSERTS": "2"})
    wait_until(lambda: not d.alive(), 60, "the injected abort")
    assert "fault injection" in d.log()
    d = start_ingest(spec)
    wait_for_rows(ch, table, total, 90)
    wait_until(lambda: d.pipeline("crashy")["lag"] == 0, 20, "lag 0")
    assert count_distinct(ch, table) == (total, total)
    assert "already in ClickHouse" in d.log(400), "the restarted daemon resumed from the ledger"


@pytest.mark.timeout(60)
def test_api_validates_specs_and_names_the_key(kafka, topic, db, start_ingest):
    daemon = start_ingest([])
    status, body = daemon.request("POST", "/pipelines", {"name": "x", "topics": [topic], "table": f"{db}.t",
                                                           "batch_max_rowz": 5})
    assert status == 400 and "batch_max_rowz" in body["error"]
    status, body = daemon.request("POST", "/pipelines", {"name": "x", "topics": [topic], "table": "no_dot"})
    assert status == 400 and "table" in body["error"]
    status, body = daemon.request("POST", "/pipelines", {"name": "x", "topics": [topic], "table": f"{db}.t",
                                                           "parallelism": 0})
    assert status == 400 and "parallelism" in body["error"]
    status, body = daemon.request("POST", "/pipelines", {"name": "okp", "topics": [topic], "table": f"{db}.t"})
    assert status == 201 and body["name"] == "okp" and body["table"] == f"{db}.t"
    status, body = daemon.request("POST", "/pipelines", {"name": "okp", "topics": [topic], "table": f"{db}.t"})
    assert status == 409
    status, body = daemon.request("DELETE", "/pipelines/nope")
    assert status == 404
    status, body = daemon.request("GET", "/health")
    assert status == 200 and body == {"status": "ok"}
    status, _ = daemon.request("DELETE", "/pipelines/okp")
    assert status == 200
    assert daemon.pipelines_view() == {}
