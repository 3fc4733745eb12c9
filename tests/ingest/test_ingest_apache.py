"""What only a real Kafka broker shows (Apache Kafka 4, scripts/kafka.sh apache-start): the daemon's lag is the
broker's high watermark minus the group's committed offset, partition by partition; a broker restart in the middle
of a run loses and doubles nothing."""

from __future__ import annotations

import time

import pytest
from clickhouse_driver import Client

from support.events import envelope_messages, produce
from support.ingest import ApacheBroker, broker_kind, wait_until
from support.servers import ClickHouseServer

pytestmark = pytest.mark.skipif(broker_kind() != "apache", reason="Apache Kafka's behaviour (AURORA_KAFKA=tansu)")


def committed(brokers, group, topic):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
    finally:
        c.close()


def lag_by_partition(daemon, name, topic):
    return {p: daemon.metric("aurora_ingest_consumer_lag", pipeline=name, topic=topic, partition=str(p))
            for p in range(3)}


def produce_split(brokers, topic, sizes, seed, start=0):
    """sizes[p] messages into partition p, numbered from `start` on."""
    bounds = [sum(sizes[:p + 1]) for p in range(3)]
    return produce(brokers, topic, envelope_messages(sum(sizes), seed=seed, start=start),
                   partition_of=lambda n: next(p for p, b in enumerate(bounds) if n < b))


@pytest.mark.timeout(240)
def test_lag_is_the_brokers_high_watermark_minus_the_committed_offset(kafka, topic, tmp_path_factory, start_ingest):
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse_lag"))
    server.start()
    try:
        ch = Client("127.0.0.1", port=server.tcp_port)
        table = "lag.events"
        daemon = start_ingest([{"name": "lag", "topics": [topic], "table": table, "batch_max_rows": 500,
                                "batch_max_wait": "200ms"}],
                              clickhouse_http=f"http://127.0.0.1:{server.http_port}")
        assert produce_split(kafka.brokers, topic, [600, 1200, 1800], seed=21) == 3600
        wait_until(lambda: ch.execute("EXISTS TABLE lag.events")[0][0] == 1
                   and ch.execute(f"SELECT count() FROM {table}")[0][0] >= 3600, 90, "3600 rows")
        wait_until(lambda: daemon.pipeline("lag")["lag"] == 0, 30, "lag 0")
        assert kafka.high_watermarks(topic) == {0: 600, 1: 1200, 2: 1800}
        assert committed(kafka.brokers, "aurora-ingest-lag", topic) == {0: 600, 1: 1200, 2: 1800}
        assert lag_by_partition(daemon, "lag", topic) == {0: 0, 1: 0, 2: 0}

        # ClickHouse away: nothing more is committed, while the broker's high watermark moves on unevenly.
        ch.disconnect()
        server.stop()
        assert produce_split(kafka.brokers, topic, [300, 0, 150], seed=21, start=3600) == 450
        hw = kafka.high_watermarks(topic)
        assert hw == {0: 900, 1: 1200, 2: 1950}
        done = committed(kafka.brokers, "aurora-ingest-lag", topic)
        expected = {p: hw[p] - done[p] for p in range(3)}
        assert expected == {0: 300, 1: 0, 2: 150}
        wait_until(lambda: lag_by_partition(daemon, "lag", topic) == expected, 30,
                   f"the lag metric per partition = {expected}")
        assert daemon.pipeline("lag")["lag"] == 450

        server.start()
        ch = Client("127.0.0.1", port=server.tcp_port)
        wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= 4050, 90, "all rows after the outage")
        wait_until(lambda: daemon.pipeline("lag")["lag"] == 0, 30, "lag 0 again")
        assert tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0]) == (4050, 4050)
    finally:
        server.stop()


@pytest.mark.timeout(300)
def test_a_broker_restart_mid_run_loses_and_doubles_nothing(tmp_path_factory, db, ch, start_ingest):
    broker = ApacheBroker(tmp_path_factory.mktemp("kafka-restart"))
    broker.start()
    try:
        topic = "restart_events"
        broker.create_topic(topic, 3)
        table = f"{db}.events"
        daemon = start_ingest([{"name": "restart", "topics": [topic], "table": table, "batch_max_rows": 2000,
                                "batch_max_wait": "200ms"}], kafka_conf={"brokers": broker.brokers})
        total = 40_000
        assert produce(broker.brokers, topic, envelope_messages(total // 2, seed=22)) == total // 2
        wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] > 2000, 60, "first rows")
        broker.restart()
        assert produce(broker.brokers, topic, envelope_messages(total // 2, seed=22, start=total // 2)) == total // 2
        wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= total, 120, "all rows after the restart")
        wait_until(lambda: daemon.pipeline("restart")["lag"] == 0, 60, "lag 0")
        time.sleep(1)
        assert tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0]) == (total, total)
        assert daemon.pipeline("restart")["state"] == "running"
        assert daemon.alive()
    finally:
        broker.stop()


def produce_transactions(brokers, topic, batches):
    """(events, commit?) pairs, each in a transaction of its own that is committed or aborted."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": brokers, "transactional.id": f"tx-{topic}", "linger.ms": 5})
    p.init_transactions(30)
    for messages, commit in batches:
        p.begin_transaction()
        for key, value in messages:
            p.produce(topic, key=key, value=value)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)


@pytest.mark.timeout(180)
def test_read_committed_skips_an_aborted_transactions_messages(kafka, topic, db, ch, start_ingest):
    produce_transactions(kafka.brokers, topic, [
        (list(envelope_messages(1000, seed=23)), True),
        (list(envelope_messages(500, seed=23, start=1000)), False),
        (list(envelope_messages(700, seed=23, start=1500)), True),
    ])
    committed_ids = {e for e in range(0, 1000)} | {e for e in range(1500, 2200)}
    daemon = start_ingest([
        {"name": "rc", "topics": [topic], "table": f"{db}.rc", "batch_max_wait": "200ms",
         "group_id": f"rc-{topic}", "kafka_options": {"isolation.level": "read_committed"}},
        # The same topic read uncommitted: the aborted messages are there to be skipped.
        {"name": "ru", "topics": [topic], "table": f"{db}.ru", "batch_max_wait": "200ms",
         "group_id": f"ru-{topic}", "kafka_options": {"isolation.level": "read_uncommitted"}},
    ])
    wait_until(lambda: ch.execute(f"SELECT count() FROM {db}.ru")[0][0] >= 2200, 90, "2200 rows read uncommitted")
    wait_until(lambda: ch.execute(f"SELECT count() FROM {db}.rc")[0][0] >= 1700, 60, "1700 rows read committed")
    time.sleep(2)
    # The lag agrees with the broker: high watermark - committed offset. (Known: after a transaction the group's
    # committed offset stays at the last message + 1, before the transaction's commit marker, so this lag stays at
    # 1 per partition and never reaches 0: a daemon finding, reported in issue 16.)
    hw = kafka.high_watermarks(topic)
    for name in ("rc", "ru"):
        done = committed(kafka.brokers, f"{name}-{topic}", topic)
        wait_until(lambda: lag_by_partition(daemon, name, topic) == {p: hw[p] - done[p] for p in range(3)}, 20,
                   f"{name}'s lag = high watermark - committed")
    assert tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {db}.ru")[0]) == (2200, 2200)
    assert tuple(ch.execute(f"SELECT count(), uniqExact(event_id) FROM {db}.rc")[0]) == (1700, 1700)
    from support.events import event_id

    rc_ids = {r[0] for r in ch.execute(f"SELECT toString(event_id) FROM {db}.rc")}
    assert rc_ids == {event_id(i, 23) for i in committed_ids}
