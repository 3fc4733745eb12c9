"""aurora-ingest pipelines over their life: connect/disconnect from the command line, two daemons in one
consumer group, ClickHouse going away for 20 s in the middle of a run."""

from __future__ import annotations

import threading
import time

import pytest
from clickhouse_driver import Client

from support.events import envelope_messages, event, produce
from support.ingest import wait_until
from support.servers import ClickHouseServer


def counts(ch, table):
    return tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0])


def committed_total(brokers, group, topic):
    """Sum over partitions of the group's committed offsets (what the group will not read again)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        c.close()


@pytest.mark.timeout(150)
def test_disconnect_then_connect_loses_and_doubles_nothing(kafka, topic, db, ch, start_ingest):
    table = f"{db}.events"
    daemon = start_ingest([])
    result = daemon.cli("connect", "--name", "live", "--topic", topic, "--table", table, "--rollup",
                        "--batch-max-rows", "2000")
    assert result.returncode == 0, result.stderr
    assert "connected" in result.stdout
    first = 60_000
    producer = threading.Thread(target=produce, args=(kafka.brokers, topic, envelope_messages(first, seed=4)))
    producer.start()
    # `connect` returns once the pipeline is registered; its table is created by the pipeline's first step, so
    # it may not exist at the first look.
    present = f"SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'events'"
    wait_until(lambda: ch.execute(present)[0][0] == 1, 60, "the pipeline's table")
    wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] > 5_000, 60, "first rows")
    result = daemon.cli("disconnect", "live")
    assert result.returncode == 0, result.stderr
    producer.join()
    assert "live" not in daemon.pipelines_view()
    # Disconnect returned after flushing and committing: the table holds exactly what the group committed.
    inserted, distinct = counts(ch, table)
    assert inserted == distinct
    assert committed_total(kafka.brokers, "aurora-ingest-live", topic) == inserted
    time.sleep(1.5)
    assert counts(ch, table)[0] == inserted, "nothing arrives after disconnect"
    assert 0 < inserted < first, "disconnected in the middle of the run"

    produce(kafka.brokers, topic, envelope_messages(20_000, seed=4, start=first))
    result = daemon.cli("connect", "--name", "live", "--topic", topic, "--table", table, "--rollup", "--follow",
                        timeout=120)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: counts(ch, table)[0] >= first + 20_000, 60, "all rows")
    wait_until(lambda: daemon.pipeline("live")["lag"] == 0, 20, "lag 0")
    assert counts(ch, table) == (first + 20_000, first + 20_000)
    # The rollup saw every row exactly once too (per-minute sums equal the table's).
    rollup = ch.execute(f"SELECT sum(events), round(sum(revenue), 2) FROM {db}.events_per_minute")[0]
    direct = ch.execute(f"SELECT count(), round(sum(revenue), 2) FROM {table}")[0]
    assert rollup == direct
    shown = daemon.cli("status")
    assert shown.returncode == 0 and "live" in shown.stdout and "running" in shown.stdout


@pytest.mark.timeout(150)
def test_two_daemons_in_one_group_share_the_partitions(kafka, topic, db, ch, start_ingest):
    table = f"{db}.events"
    spec = [{"name": "shared", "topics": [topic], "table": table, "batch_max_wait": "200ms",
             "batch_max_rows": 5000}]
    a = start_ingest(spec)
    wait_until(lambda: a.pipeline("shared")["state"] == "running", 30, "daemon a running")
    b = start_ingest(spec)
    wait_until(lambda: b.pipeline("shared")["state"] == "running", 30, "daemon b running")
    # Both members hold partitions once the rebalance that b's arrival started has completed.
    wait_until(lambda: a.metric("aurora_ingest_rebalances_total", pipeline="shared") >= 3, 30, "a rebalanced")
    total = 60_000
    produce(kafka.brokers, topic, envelope_messages(total, seed=5))
    wait_until(lambda: counts(ch, table)[0] >= total, 90, "all rows")
    time.sleep(1)
    assert counts(ch, table) == (total, total)
    rows_a = a.metric("aurora_ingest_rows_inserted_total", pipeline="shared")
    rows_b = b.metric("aurora_ingest_rows_inserted_total", pipeline="shared")
    assert rows_a > 0 and rows_b > 0, (rows_a, rows_b)
    assert rows_a + rows_b == total
    partitions_a = {p for p, in ch.execute(
        f"SELECT DISTINCT `partition` FROM {db}.aurora_ingest_ledger WHERE pipeline = 'shared'")}
    assert partitions_a == {0, 1, 2}


@pytest.mark.timeout(240)
def test_clickhouse_stopped_for_20s_mid_run_loses_nothing(kafka, topic, tmp_path_factory, start_ingest):
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse_outage"))
    server.start()
    try:
        ch = Client("127.0.0.1", port=server.tcp_port)
        table = "outage.events"
        daemon = start_ingest(
            [{"name": "outage", "topics": [topic], "table": table, "batch_max_rows": 2000,
              "batch_max_wait": "200ms"}],
            clickhouse_http=f"http://127.0.0.1:{server.http_port}",
        )
        total = 80_000
        # Produced at a steady pace through the whole outage.
        def slow_produce():
            for start in range(0, total, 4000):
                produce(kafka.brokers, topic, envelope_messages(4000, seed=6, start=start))
                time.sleep(1.0)

        producer = threading.Thread(target=slow_produce)
        producer.start()
        wait_until(lambda: ch.execute("EXISTS TABLE outage.events")[0][0] == 1
                   and ch.execute(f"SELECT count() FROM {table}")[0][0] > 3000, 60, "first rows")
        ch.disconnect()
        server.stop()
        stopped_at = time.monotonic()
        wait_until(lambda: daemon.pipeline("outage")["state"] == "backoff", 20, "backoff while ClickHouse is down")
        assert daemon.pipeline("outage")["last_error"]
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped_at)))
        server.start()
        producer.join()
        ch = Client("127.0.0.1", port=server.tcp_port)
        wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= total, 90, "all rows after the outage")
        time.sleep(1)
        assert counts(ch, table) == (total, total)
        assert daemon.pipeline("outage")["state"] == "running"
        assert daemon.metric("aurora_ingest_retries_total", pipeline="outage") > 0
        assert daemon.metric("aurora_ingest_batches_total", pipeline="outage", outcome="error") > 0
        assert daemon.alive()
    finally:
        server.stop()
