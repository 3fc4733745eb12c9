"""aurora-ingest on a ClickHouse cluster (scripts/cluster.sh: ZooKeeper and three 18.16 replicas of one shard,
cluster `aurora`): `[clickhouse] urls` = the three nodes, `cluster = "aurora"`, so every table that stores data is
Replicated and the ledger is the same on every node. The node being inserted into is SIGKILLed mid-run and
restarted; every event must arrive exactly once, seen through a Distributed table.

Also measured here: whether 18.16's replicated block deduplication drops a block that the stage's materialized
view writes twice, through two different nodes (what a retry after "inserted, but the node died before
answering" does)."""

from __future__ import annotations

import time
import uuid

import pytest

from support.cluster import ClickHouseCluster
from support.events import envelope_messages, produce
from support.ingest import IngestDaemon, wait_until

CLUSTER = "aurora"


@pytest.fixture(scope="session")
def ingest_cluster(tmp_path_factory):
    """The three-replica cluster of these tests, started once, stopped at the end."""
    cluster = ClickHouseCluster(tmp_path_factory.mktemp("ingest-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_db(ingest_cluster):
    """A database of this test's own on every node (dropped on every node afterwards)."""
    name = f"ic_{uuid.uuid4().hex[:10]}"
    yield name
    for node in (1, 2, 3):
        try:
            ingest_cluster.query(node, f"DROP DATABASE IF EXISTS {name}")
        except Exception:  # noqa: BLE001 - a node may be down after a failed test; the data dir goes anyway
            pass


def urls(cluster: ClickHouseCluster) -> list:
    return [f"http://127.0.0.1:{cluster.http_port(n)}" for n in (1, 2, 3)]


def start_daemon(tmp_path, cluster, kafka, pipelines, started) -> IngestDaemon:
    d = IngestDaemon(
        tmp_path, urls(cluster), {"brokers": kafka.brokers}, pipelines,
        clickhouse_config=[f'cluster = "{CLUSTER}"', 'request_timeout = "10s"'],
    )
    d.start()
    started.append(d)
    return d


@pytest.fixture
def daemons():
    started = []
    yield started
    problems = [problem for d in started if (problem := d.stop()) is not None]
    assert not problems, "\n".join(problems)


def q(cluster, node, sql) -> str:
    return cluster.query(node, sql).strip()


def q_or_none(cluster, node, sql):
    try:
        return q(cluster, node, sql)
    except Exception:  # noqa: BLE001 - node down or not ready
        return None


def distributed(cluster, db, table) -> str:
    """A Distributed(aurora, db, table) beside `table`, on node 2; its name."""
    name = f"{table}_all"
    cluster.query(2, f"CREATE TABLE IF NOT EXISTS {db}.{name} AS {db}.{table} "
                     f"ENGINE = Distributed({CLUSTER}, {db}, {table})")
    return f"{db}.{name}"


def replicas_agree(cluster, db, table, expected):
    counts = [q_or_none(cluster, n, f"SELECT count() FROM {db}.{table}") for n in (1, 2, 3)]
    return counts if counts == [str(expected)] * 3 else False


@pytest.mark.timeout(420)
def test_100k_events_arrive_once_while_the_node_being_inserted_into_is_killed(
        tmp_path, ingest_cluster, kafka, topic, cluster_db, daemons):
    cluster, db, total = ingest_cluster, cluster_db, 100_000
    half = total // 2
    assert produce(kafka.brokers, topic, envelope_messages(half, seed=11)) == half
    spec = {"name": "pcluster", "topics": [topic], "table": f"{db}.events", "batch_max_rows": 1000,
            "batch_max_wait": "200ms", "rollup": True}
    started_at = time.monotonic()
    daemon = start_daemon(tmp_path, cluster, kafka, [spec], daemons)
    # Every table that stores data is Replicated, on every node; the stage and its views exist on every node.
    wait_until(lambda: daemon.metric("aurora_ingest_rows_inserted_total", pipeline="pcluster") >= 5_000, 90,
               "5k rows inserted")
    for node in (1, 2, 3):
        engines = dict(line.split("\t") for line in q(
            cluster, node, f"SELECT name, engine FROM system.tables WHERE database = '{db}'").splitlines())
        assert engines["events"] == "ReplicatedMergeTree", engines
        assert engines["aurora_ingest_ledger"] == "ReplicatedMergeTree", engines
        assert engines["events_dead_letters"] == "ReplicatedReplacingMergeTree", engines
        assert engines["events_per_minute"] == "ReplicatedSummingMergeTree", engines
        assert engines["aurora_stage_pcluster"] == "Null", engines
        assert {"aurora_stage_pcluster_v1_rows", "aurora_stage_pcluster_v3_ledger"} <= set(engines), engines
    # The daemon starts with the first node and has not switched: node 1 is the one it inserts into.
    assert daemon.metric("aurora_ingest_clickhouse_failovers_total", pipeline="pcluster") == 0, daemon.log()
    inserted_before_kill = daemon.metric("aurora_ingest_rows_inserted_total", pipeline="pcluster")
    assert inserted_before_kill < half, f"the first half was done before the kill ({inserted_before_kill})"
    cluster.kill(1)
    killed_at = time.monotonic()
    wait_until(lambda: daemon.metric("aurora_ingest_clickhouse_failovers_total", pipeline="pcluster") >= 1, 60,
               "a failover away from the killed node")
    # The rest of the events arrive while node 1 is down and while it comes back.
    assert produce(kafka.brokers, topic, envelope_messages(total - half, seed=11, start=half)) == total - half
    time.sleep(max(0.0, 3.0 - (time.monotonic() - killed_at)))
    cluster.restart(1)
    table = distributed(cluster, db, "events")
    wait_until(lambda: daemon.pipeline("pcluster")["rows_inserted"] >= total, 180, f"{total} rows acknowledged")
    wait_until(lambda: daemon.pipeline("pcluster")["lag"] == 0, 60, "lag 0")
    # Replication settles on every replica (node 1 fetches what was written while it was away).
    wait_until(lambda: replicas_agree(cluster, db, "events", q(cluster, 2, f"SELECT count() FROM {db}.events")),
               120, "the three replicas agree")
    elapsed = time.monotonic() - started_at
    count, distinct = q(cluster, 2, f"SELECT count(), uniqExact(event_id) FROM {table}").split("\t")
    failovers = daemon.metric("aurora_ingest_clickhouse_failovers_total", pipeline="pcluster")
    print(f"\ncluster run: {count} rows, {distinct} distinct, produced {total}, {elapsed:.1f}s, "
          f"{failovers:.0f} failovers, {inserted_before_kill:.0f} rows acknowledged before the kill")
    assert (int(count), int(distinct)) == (total, total), daemon.log(120)
    # The rollup agrees with the rows, and the ledger covers every offset of every partition once.
    events = q(cluster, 2, f"SELECT sum(events) FROM {db}.events_per_minute")
    assert int(events) == total, events
    ranges = q(cluster, 2, f"SELECT `partition`, max(last_offset), count() FROM {db}.aurora_ingest_ledger "
                           f"WHERE pipeline = 'pcluster' GROUP BY `partition` ORDER BY `partition`")
    assert len(ranges.splitlines()) == 3, ranges
    # Node 1, back, still has its stage and views (and the daemon may insert there again).
    names = q(cluster, 1, f"SELECT name FROM system.tables WHERE database = '{db}' AND name LIKE 'aurora_stage_%'")
    assert set(names.split()) >= {"aurora_stage_pcluster", "aurora_stage_pcluster_v1_rows",
                                  "aurora_stage_pcluster_v3_ledger"}, names


@pytest.mark.timeout(300)
def test_a_node_down_at_start_is_prepared_before_its_first_insert(
        tmp_path, ingest_cluster, kafka, topic, cluster_db, daemons):
    cluster, db = ingest_cluster, cluster_db
    cluster.kill(3)
    try:
        spec = {"name": "plate", "topics": [topic], "table": f"{db}.events", "batch_max_rows": 1000,
                "batch_max_wait": "200ms"}
        daemon = start_daemon(tmp_path, cluster, kafka, [spec], daemons)
        assert produce(kafka.brokers, topic, envelope_messages(3_000, seed=12)) == 3_000
        wait_until(lambda: daemon.pipeline("plate")["rows_inserted"] >= 3_000, 90, "3k rows acknowledged")
        cluster.restart(3)
        assert q(cluster, 3, f"SELECT count() FROM system.tables WHERE database = '{db}' "
                             f"AND name LIKE 'aurora_stage_plate%'") == "0", "node 3 was prepared while down?"
        # Only node 3 is left: the daemon must prepare it (database, replicated tables, stage, views), then insert.
        cluster.kill(1)
        cluster.kill(2)
    except BaseException:
        for node in (1, 2, 3):
            try:
                cluster.restart(node)
            except Exception:  # noqa: BLE001 - already running
                pass
        raise
    try:
        assert produce(kafka.brokers, topic, envelope_messages(3_000, seed=12, start=3_000)) == 3_000
        wait_until(lambda: daemon.pipeline("plate")["rows_inserted"] >= 6_000, 120,
                   "3k more rows acknowledged by node 3")
        assert "ClickHouse node prepared" in daemon.log(400), daemon.log(120)
    finally:
        cluster.restart(1)
        cluster.restart(2)
    wait_until(lambda: replicas_agree(cluster, db, "events", 6_000), 120, "6000 rows on every replica")
    table = distributed(cluster, db, "events")
    assert q(cluster, 2, f"SELECT count(), uniqExact(event_id) FROM {table}") == "6000\t6000"


@pytest.mark.timeout(300)
def test_measure_replicated_deduplication_of_blocks_written_through_the_stage_views(
        tmp_path, ingest_cluster, kafka, topic, cluster_db, daemons):
    """What happens to a batch sent again to another node after it was written on the first: the same rows in
    the same single insert into the stage, once through node 2 and once through node 3."""
    cluster, db = ingest_cluster, cluster_db
    spec = {"name": "pdedup", "topics": [topic], "table": f"{db}.events", "batch_max_wait": "200ms"}
    daemon = start_daemon(tmp_path, cluster, kafka, [spec], daemons)
    assert produce(kafka.brokers, topic, envelope_messages(100, seed=13)) == 100
    wait_until(lambda: daemon.pipeline("pdedup")["rows_inserted"] >= 100, 60, "100 rows acknowledged")
    assert daemon.stop() is None
    wait_until(lambda: replicas_agree(cluster, db, "events", 100), 60, "100 rows on every replica")
    ledger_before = int(q(cluster, 2, f"SELECT count() FROM {db}.aurora_ingest_ledger"))
    # One batch of 50 rows (the same partition and month), as the daemon would send it (with a fixed time).
    rows = ",".join(
        f"(toUUID('{uuid.UUID(int=i + 1)}'), toDateTime('2026-09-21 10:00:00'), 'purchase', 'acme', 'u{i}', "
        f"{i}.5, '{{}}', 1, '{topic}', 0, {100_000 + i})"
        for i in range(50))
    insert = (f"INSERT INTO {db}.aurora_stage_pdedup (event_id, timestamp, event_type, tenant_id, user_id, revenue, "
              f"payload, schema_version, _aurora_topic, _aurora_partition, _aurora_offset) VALUES {rows}")
    cluster.query(2, insert)
    time.sleep(1.1)  # the ledger row's inserted_at (now()) differs between the two, as it would for a retry
    cluster.query(3, insert)
    table = distributed(cluster, db, "events")

    def settled():
        # Every replica has fetched every part of both tables (node 3's parts reach node 2 asynchronously):
        # the same counts on the three nodes, twice 2 s apart.
        def counts():
            return [(q_or_none(cluster, n, f"SELECT count() FROM {db}.events"),
                     q_or_none(cluster, n, f"SELECT count() FROM {db}.aurora_ingest_ledger")) for n in (1, 2, 3)]
        first = counts()
        if len(set(first)) != 1 or first[0][1] is None or int(first[0][1]) <= ledger_before:
            return False
        time.sleep(2)
        return first if counts() == first else False

    wait_until(settled, 60, "replicas agree on the target and the ledger")
    target = int(q(cluster, 2, f"SELECT count() FROM {table}"))
    ledger = int(q(cluster, 2, f"SELECT count() FROM {db}.aurora_ingest_ledger")) - ledger_before
    ledger_rows = q(cluster, 2, f"SELECT first_offset, last_offset, rows, inserted_at FROM {db}.aurora_ingest_ledger "
                                f"WHERE first_offset >= 100000 ORDER BY inserted_at")
    print(f"ledger rows of the block: {ledger_rows!r}")
    print(f"\nsame 50-row block through node 2 then node 3: target +{target - 100} rows, ledger +{ledger} rows")
    # Measured on 18.16: the target's block (same rows, same order) is deduplicated by ReplicatedMergeTree's
    # block hash across replicas; the ledger's block differs (inserted_at) and is kept twice, which is harmless
    # (the ledger is read as max(last_offset)).
    assert target - 100 == 50, f"the target got {target - 100} rows from two identical blocks"
    assert ledger == 2, ledger
