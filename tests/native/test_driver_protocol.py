"""clickhouse-driver (revision 54468) through the proxy: streaming, compression, inserts, external tables,
totals/extremes, progress, ping, cancel, concurrency, users and server exceptions — compared with direct."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from clickhouse_driver import errors

from support.driver import connect, error_view, run_error

COMPRESSIONS = [False, "lz4", "zstd"]


def server_info_view(client):
    client.execute("SELECT 1")
    info = client.connection.server_info
    return (info.name, info.version_major, info.version_minor, info.version_patch, info.revision, info.timezone, info.display_name)


def test_server_hello(proxy, direct):
    """The handshake answer a client sees: name, version, revision, timezone, display name."""
    seen_proxy = server_info_view(connect(proxy))
    seen_direct = server_info_view(connect(direct))
    assert seen_proxy == seen_direct
    assert seen_proxy[:2] == ("ClickHouse", 18)


@pytest.mark.parametrize("compression", COMPRESSIONS, ids=["none", "lz4", "zstd"])
def test_stream_two_million_rows(proxy, direct, compression):
    q = "SELECT number, number % 7 FROM numbers(2000000)"
    answers = []
    for endpoint in (proxy, direct):
        client = connect(endpoint, compression=compression)
        count = total = mod_total = blocks = 0
        for number, mod in client.execute_iter(q, settings={"max_block_size": 65536}):
            count += 1
            total += number
            mod_total += mod
        answers.append((count, total, mod_total, client.last_query.progress.rows))
        client.disconnect()
    assert answers[0] == answers[1]
    assert answers[0][:3] == (2_000_000, 2_000_000 * 1_999_999 // 2, sum(i % 7 for i in range(7)) * (2_000_000 // 7) + sum(range(2_000_000 % 7)))
    assert answers[0][3] >= 2_000_000  # progress packets arrived


@pytest.mark.parametrize("compression", [False, "lz4"], ids=["none", "lz4"])
def test_insert_hundred_thousand_rows(proxy, direct, db, compression):
    rows = [(i, f"name-{i}", i * 0.25, [i, i + 1]) for i in range(100_000)]
    for endpoint, table in ((proxy, "via_proxy"), (direct, "via_direct")):
        client = connect(endpoint, compression=compression)
        client.execute(
            f"CREATE TABLE {db}.{table} (id UInt32, name String, x Float64, a Array(UInt32)) ENGINE = MergeTree ORDER BY id"
        )
        inserted = client.execute(f"INSERT INTO {db}.{table} VALUES", rows)
        assert inserted == len(rows)
        client.disconnect()

    contents_proxy = connect(proxy, compression=compression).execute(f"SELECT * FROM {db}.via_proxy ORDER BY id")
    contents_direct = connect(direct).execute(f"SELECT * FROM {db}.via_direct ORDER BY id")
    assert contents_proxy == contents_direct == [tuple(r) for r in rows]


def test_insert_with_columnar_and_types_check(proxy, direct, db):
    """INSERT ... VALUES sends a Query, reads the table's header block, then sends Data blocks."""
    for endpoint, table in ((proxy, "via_proxy"), (direct, "via_direct")):
        client = connect(endpoint)
        client.execute(f"CREATE TABLE {db}.{table} (k UInt8, v Nullable(String)) ENGINE = Memory")
        client.execute(f"INSERT INTO {db}.{table} (k, v) VALUES", [[1, 2, 3], ["a", None, "c"]], columnar=True, types_check=True)
    a = connect(proxy).execute(f"SELECT * FROM {db}.via_proxy ORDER BY k")
    b = connect(direct).execute(f"SELECT * FROM {db}.via_direct ORDER BY k")
    assert a == b == [(1, "a"), (2, None), (3, "c")]


def test_insert_wrong_column_fails_the_same(proxy, direct, db):
    connect(direct).execute(f"CREATE TABLE {db}.t (k UInt8) ENGINE = Memory")
    seen = [run_error(endpoint, f"INSERT INTO {db}.t (nope) VALUES") for endpoint in (proxy, direct)]
    assert seen[0] == seen[1]
    assert seen[0][1] == 16  # NO_SUCH_COLUMN_IN_TABLE


def test_external_tables(proxy, direct):
    external = [
        {
            "name": "ext",
            "structure": [("id", "UInt32"), ("s", "String"), ("n", "Nullable(Float64)")],
            "data": [{"id": i, "s": f"v{i}", "n": None if i % 10 == 0 else i / 2} for i in range(1, 5001)],
        },
        {"name": "small", "structure": [("k", "UInt8")], "data": [{"k": 1}, {"k": 2}]},
    ]
    q = "SELECT count(), sum(id), countIf(n IS NULL), max(s), (SELECT sum(k) FROM small) FROM ext"
    answers = [connect(e).execute(q, external_tables=external) for e in (proxy, direct)]
    assert answers[0] == answers[1] == [(5000, 12502500, 500, "v999", 3)]

    # Compressed blocks for external tables too.
    answers = [connect(e, compression="lz4").execute(q, external_tables=external) for e in (proxy, direct)]
    assert answers[0] == answers[1]


def test_totals_extremes_profile_progress(proxy, direct):
    q = "SELECT number % 3 AS k, count() AS c FROM numbers(100000) GROUP BY k WITH TOTALS ORDER BY k LIMIT 2"
    seen = []
    for endpoint in (proxy, direct):
        client = connect(endpoint)
        rows, types = client.execute(q, with_column_types=True, settings={"extremes": 1})
        info = client.last_query.profile_info
        progress = client.last_query.progress
        seen.append((rows, types, info.rows, info.rows_before_limit, info.applied_limit, progress.rows, progress.total_rows))
    assert seen[0] == seen[1]
    rows, types, info_rows, before_limit, applied_limit, progress_rows, _ = seen[0]
    # data rows, then the totals row, then the extremes (min, max): clickhouse-driver appends them in order.
    assert rows == [(0, 33334), (1, 33333), (0, 100000), (0, 33333), (1, 33334)]
    assert types == [("k", "UInt8"), ("c", "UInt64")]
    assert before_limit == 3 and applied_limit
    assert progress_rows >= 100000


def test_progress_and_totals_through_iter(proxy, direct):
    q = "SELECT number % 5 AS k, sum(number) FROM numbers(500000) GROUP BY k WITH TOTALS ORDER BY k"
    answers = []
    for endpoint in (proxy, direct):
        client = connect(endpoint)
        answers.append(list(client.execute_iter(q, with_column_types=True)))
    assert answers[0] == answers[1]
    assert answers[0][-1] == (0, 124999750000)


def test_ping(proxy, direct):
    for endpoint in (proxy, direct):
        client = connect(endpoint)
        assert client.execute("SELECT 1") == [(1,)]
        for _ in range(3):
            assert client.connection.ping() is True
        assert client.execute("SELECT 2") == [(2,)]
        client.disconnect()


def test_settings_reach_the_server(proxy, direct):
    """Settings are encoded per revision (binary before 54429): a wrong encoding changes the answer."""
    q = "SELECT name, value FROM system.settings WHERE name IN ('max_block_size', 'max_threads', 'extremes', 'readonly', 'join_use_nulls') ORDER BY name"
    settings = {"max_block_size": 12345, "max_threads": 1, "extremes": 1, "join_use_nulls": 1}
    answers = [connect(e).execute(q, settings=settings) for e in (proxy, direct)]
    assert answers[0] == answers[1]
    values = dict(answers[0][: len(settings) + 1])
    assert values["max_block_size"] == "12345" and values["join_use_nulls"] == "1"

    over = [
        run_error(e, "SELECT number FROM numbers(100)", settings={"max_result_rows": 10, "result_overflow_mode": "throw"})
        for e in (proxy, direct)
    ]
    assert over[0] == over[1]
    assert over[0][1] == 396  # TOO_MANY_ROWS_OR_BYTES


def test_query_id_reaches_the_server(proxy, direct):
    for endpoint in (proxy, direct):
        qid = f"aurora-test-{uuid.uuid4()}"
        rows = connect(endpoint).execute("SELECT queryID()" if False else "SELECT query_id FROM system.processes WHERE query_id = %(q)s", {"q": qid}, query_id=qid)
        assert rows == [(qid,)]


def test_cancel_mid_stream_then_reuse(proxy, direct):
    answers = []
    for endpoint in (proxy, direct):
        client = connect(endpoint)
        seen = 0
        for _ in client.execute_iter("SELECT number FROM system.numbers", settings={"max_block_size": 10000}):
            seen += 1
            if seen == 50_000:
                break
        # clickhouse-driver: cancel() sends Cancel and drains to EndOfStream; the connection stays usable.
        client.cancel()
        answers.append((seen, client.execute("SELECT 42, 'after cancel'")))
        client.disconnect()
    assert answers[0] == answers[1] == (50_000, [(42, "after cancel")])


def test_disconnect_mid_stream_then_reconnect(proxy, direct):
    for endpoint in (proxy, direct):
        client = connect(endpoint)
        it = client.execute_iter("SELECT number FROM system.numbers", settings={"max_block_size": 10000})
        assert next(it) == (0,)
        client.disconnect()  # closes the socket mid-stream
        assert client.execute("SELECT 'again'") == [("again",)]  # a fresh connection
        client.disconnect()


def test_twenty_concurrent_connections(proxy, direct):
    def worker(i):
        client = connect(proxy, compression="lz4" if i % 2 else False)
        got = []
        for j in range(5):
            n = 1000 * (i + 1) + j
            got.append(client.execute(f"SELECT count(), sum(number), {i} FROM numbers({n})")[0])
        rows = sum(1 for _ in client.execute_iter(f"SELECT number FROM numbers({50_000 + i})"))
        client.disconnect()
        return got, rows

    start = threading.Barrier(20)

    def synced(i):
        start.wait(timeout=30)
        return worker(i)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(synced, range(20)))
    for i, (got, rows) in enumerate(results):
        assert got == [(1000 * (i + 1) + j, (1000 * (i + 1) + j) * (1000 * (i + 1) + j - 1) // 2, i) for j in range(5)]
        assert rows == 50_000 + i
    assert connect(direct).execute("SELECT 1") == [(1,)]


def test_readonly_user(proxy, direct, db):
    connect(direct).execute(f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory")
    seen = [run_error(e, f"INSERT INTO {db}.t VALUES (1)", user="reader", password="reader-secret") for e in (proxy, direct)]
    assert seen[0] == seen[1]
    assert seen[0][1] == 164

    seen = [run_error(e, "SET readonly = 0", user="reader", password="reader-secret") for e in (proxy, direct)]
    assert seen[0] == seen[1]

    reads = [connect(e, user="reader", password="reader-secret").execute(f"SELECT count() FROM {db}.t") for e in (proxy, direct)]
    assert reads[0] == reads[1] == [(0,)]


def test_wrong_password(proxy, direct):
    seen = [run_error(e, "SELECT 1", user="alice", password="wrong") for e in (proxy, direct)]
    assert seen[0] == seen[1]
    assert seen[0][:2] == ("ServerException", 193)

    ok = [connect(e, user="alice", password="alice-secret").execute("SELECT 'hi alice'") for e in (proxy, direct)]
    assert ok[0] == ok[1] == [("hi alice",)]


def test_unknown_database_at_login(proxy, direct):
    seen = [run_error(e, "SELECT 1", database="no_such_db") for e in (proxy, direct)]
    assert seen[0] == seen[1]
    assert seen[0][1] == 81


@pytest.mark.parametrize(
    "query, code",
    [
        ("SELEC 1", 62),
        ("SELECT * FROM default.no_such_table", 60),
        ("SELECT throwIf(number = 200000) FROM numbers(1000000)", 395),
        ("SELECT 1 +", 62),
        ("SELECT arrayElement([1], 'x')", 43),
    ],
    ids=["syntax", "unknown-table", "throw-mid-stream", "truncated", "bad-types"],
)
def test_server_exceptions(proxy, direct, query, code):
    seen = [run_error(e, query) for e in (proxy, direct)]
    assert seen[0] == seen[1]
    assert seen[0][:2] == ("ServerException", code)


def test_exception_after_rows_then_reuse(proxy, direct):
    """An Exception packet arriving after Data packets; the connection is usable afterwards."""
    for endpoint in (proxy, direct):
        client = connect(endpoint)
        got = 0
        with pytest.raises(errors.ServerException) as info:
            for _ in client.execute_iter("SELECT throwIf(number = 300000) FROM numbers(1000000)", settings={"max_block_size": 1000}):
                got += 1
        assert info.value.code == 395
        assert got > 0
        assert client.execute("SELECT 7") == [(7,)]
