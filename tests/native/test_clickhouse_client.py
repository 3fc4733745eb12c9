"""Debian's clickhouse-client (18.16, native protocol) sees the same thing through the proxy as directly."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from support.cli import clickhouse_client, exception_code

ROWS_QUERY = (
    "SELECT number, toString(number * 7) AS s, toDate('2024-01-01') + number AS d, "
    "number % 3 = 0 ? NULL : number / 4 AS maybe FROM numbers(25)"
)


def strip_elapsed(output: bytes) -> bytes:
    """JSON formats report the server's elapsed time, which differs run to run."""
    return re.sub(rb'"elapsed": [0-9.e-]+', b'"elapsed": 0', output)


def both(proxy, direct, **kwargs):
    return clickhouse_client(proxy, **kwargs), clickhouse_client(direct, **kwargs)


@pytest.mark.parametrize("fmt", ["TSV", "TSVWithNamesAndTypes", "CSVWithNames", "JSON", "JSONCompact", "Pretty", "Vertical"])
def test_formats(proxy, direct, fmt):
    via_proxy, via_direct = both(proxy, direct, query=f"{ROWS_QUERY} FORMAT {fmt}")
    assert via_direct.returncode == 0, via_direct.stderr
    assert via_proxy.returncode == 0, via_proxy.stderr
    assert strip_elapsed(via_proxy.stdout) == strip_elapsed(via_direct.stdout)
    assert via_proxy.stderr == via_direct.stderr == ""
    if fmt == "JSON":
        assert json.loads(via_proxy.stdout)["rows"] == 25


def test_server_identity(proxy, direct):
    q = "SELECT version(), timezone(), currentDatabase() FORMAT TSV"
    via_proxy, via_direct = both(proxy, direct, query=q)
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.stdout.startswith(b"18.16.1\t")


def test_multiquery(proxy, direct, db):
    def script(table):
        # One statement per line: in 18.16's --multiquery, INSERT ... VALUES data runs to the end of the line.
        return "\n".join([
            f"CREATE TABLE {db}.{table} (k UInt32, v String) ENGINE = MergeTree ORDER BY k;",
            f"INSERT INTO {db}.{table} VALUES (1, 'one'), (2, 'two'), (3, 'three');",
            f"SELECT k, v FROM {db}.{table} ORDER BY k;",
            f"SELECT count(), sum(k) FROM {db}.{table};",
            f"ALTER TABLE {db}.{table} DELETE WHERE k = 2;",
            "SELECT 'done'",
        ])

    via_proxy = clickhouse_client(proxy, "--multiquery", query=script("via_proxy"))
    via_direct = clickhouse_client(direct, "--multiquery", query=script("via_direct"))
    assert via_direct.returncode == 0, via_direct.stderr
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.stdout == b"1\tone\n2\ttwo\n3\tthree\n3\t6\ndone\n"


def test_insert_from_stdin(proxy, direct, db):
    rows = 50_000
    data = "".join(f"{i}\tname-{i}\t{i * 0.5}\n" for i in range(rows)).encode()
    for table in ("via_proxy", "via_direct"):
        created = clickhouse_client(
            direct, query=f"CREATE TABLE {db}.{table} (id UInt64, name String, x Float64) ENGINE = MergeTree ORDER BY id"
        )
        assert created.returncode == 0, created.stderr

    ins_proxy = clickhouse_client(proxy, query=f"INSERT INTO {db}.via_proxy FORMAT TSV", stdin=data)
    ins_direct = clickhouse_client(direct, query=f"INSERT INTO {db}.via_direct FORMAT TSV", stdin=data)
    assert ins_direct.returncode == 0, ins_direct.stderr
    assert ins_proxy.user_view() == ins_direct.user_view()

    check = "SELECT count(), sum(id), sum(x), uniqExact(name), cityHash64(groupArray(name)) FROM (SELECT * FROM {db}.{t} ORDER BY id) FORMAT TSV"
    a = clickhouse_client(proxy, query=check.format(db=db, t="via_proxy"))
    b = clickhouse_client(direct, query=check.format(db=db, t="via_direct"))
    assert a.user_view() == b.user_view()
    assert a.stdout.split(b"\t")[:2] == [b"50000", str(rows * (rows - 1) // 2).encode()]


@pytest.mark.parametrize(
    "query, code",
    [
        ("SELEC 1", 62),  # rejected by the client's own parser: never leaves the machine
        ("SELECT * FROM {db}.no_such_table", 60),
        ("SELECT throwIf(number = 3) FROM numbers(10)", 395),
        ("SELECT no_such_function(1)", 46),
    ],
    ids=["syntax", "unknown-table", "throw-mid-query", "unknown-function"],
)
def test_errors(proxy, direct, db, query, code):
    q = query.format(db=db)
    via_proxy, via_direct = both(proxy, direct, query=q)
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.returncode == code % 256  # the client exits with the code modulo 256
    assert exception_code(via_proxy.stderr) == code


def test_wrong_password(proxy, direct):
    via_proxy, via_direct = both(proxy, direct, user="alice", password="not-alice-secret", query="SELECT 1")
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.returncode in (192, 193)
    assert "alice" in via_proxy.stderr

    ok_proxy, ok_direct = both(proxy, direct, user="alice", password="alice-secret", query="SELECT 1")
    assert ok_proxy.user_view() == ok_direct.user_view() == (0, b"1\n", "")


def test_unknown_user(proxy, direct):
    via_proxy, via_direct = both(proxy, direct, user="mallory", password="x", query="SELECT 1")
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.returncode == 192


def test_readonly_user(proxy, direct, db):
    created = clickhouse_client(direct, query=f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory")
    assert created.returncode == 0, created.stderr
    refused_proxy, refused_direct = both(
        proxy, direct, user="reader", password="reader-secret", query=f"INSERT INTO {db}.t VALUES (1)"
    )
    assert refused_proxy.user_view() == refused_direct.user_view()
    assert refused_proxy.returncode == 164

    read_proxy, read_direct = both(
        proxy, direct, user="reader", password="reader-secret", query=f"SELECT count() FROM {db}.t"
    )
    assert read_proxy.user_view() == read_direct.user_view() == (0, b"0\n", "")


@pytest.mark.parametrize("compression", ["0", "1"])
def test_compression_flag(proxy, direct, compression):
    q = "SELECT number, toString(number), number * 1.5 FROM numbers(300000) FORMAT TSV"
    via_proxy, via_direct = both(proxy, direct, query=q, extra=["--compression", compression])
    assert via_direct.returncode == 0, via_direct.stderr
    assert via_proxy.returncode == 0, via_proxy.stderr
    assert hashlib.sha256(via_proxy.stdout).hexdigest() == hashlib.sha256(via_direct.stdout).hexdigest()
    assert via_proxy.stdout.count(b"\n") == 300000


def test_external_table(proxy, direct, tmp_path):
    ext = tmp_path / "ext.tsv"
    ext.write_bytes("".join(f"{i}\tv{i}\n" for i in range(1, 1001)).encode())
    args = ["--external", f"--file={ext}", "--name=ext", "--structure=id UInt32, s String"]
    q = "SELECT count(), sum(id), min(s), max(s) FROM ext FORMAT TSV"
    via_proxy, via_direct = both(proxy, direct, query=q, extra=args)
    assert via_direct.returncode == 0, via_direct.stderr
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.stdout == b"1000\t500500\tv1\tv999\n"

    join = "SELECT number FROM numbers(10) WHERE toUInt32(number) IN (SELECT id FROM ext) ORDER BY number FORMAT TSV"
    a, b = both(proxy, direct, query=join, extra=args)
    assert a.user_view() == b.user_view()
    assert a.stdout == b"".join(f"{i}\n".encode() for i in range(1, 10))


@pytest.mark.parametrize("fmt", ["TSV", "JSON", "Pretty", "TSVWithNames"])
def test_totals_and_extremes(proxy, direct, fmt):
    q = f"SELECT number % 4 AS k, count() AS c, sum(number) AS s FROM numbers(1000) GROUP BY k WITH TOTALS ORDER BY k FORMAT {fmt}"
    via_proxy, via_direct = both(proxy, direct, query=q, extra=["--extremes", "1"])
    assert via_direct.returncode == 0, via_direct.stderr
    assert via_proxy.returncode == 0, via_proxy.stderr
    assert strip_elapsed(via_proxy.stdout) == strip_elapsed(via_direct.stdout)
    if fmt == "TSV":
        # rows, blank, totals, blank, extremes (min, max)
        assert via_proxy.stdout.split(b"\n\n")[1] == b"0\t1000\t499500"
    if fmt == "JSON":
        doc = json.loads(via_proxy.stdout)
        assert doc["totals"]["c"] == "1000"
        assert doc["extremes"]["max"]["k"] == 3  # UInt8 is a JSON number, UInt64 a string
        assert doc["rows_before_limit_at_least"] == 4  # from the ProfileInfo packet


LOG_LINE = re.compile(r"<(\w+)> (\w+): ")


def test_send_logs(proxy, direct):
    q = "SELECT count() FROM numbers(100000)"
    via_proxy, via_direct = both(proxy, direct, query=q, extra=["--send_logs_level=trace"])
    assert via_proxy.returncode == via_direct.returncode == 0
    assert via_proxy.stdout == via_direct.stdout == b"100000\n"
    # Log lines carry time, query id and thread: compare what kind of lines arrived.
    kinds_proxy = set(LOG_LINE.findall(via_proxy.stderr))
    kinds_direct = set(LOG_LINE.findall(via_direct.stderr))
    assert ("Information", "executeQuery") in kinds_direct, via_direct.stderr
    assert kinds_proxy == kinds_direct
    assert re.search(r"executeQuery: Read \d+ rows", via_proxy.stderr)


def test_send_logs_with_error(proxy, direct):
    q = "SELECT throwIf(1)"
    via_proxy, via_direct = both(proxy, direct, query=q, extra=["--send_logs_level=error"])
    assert via_proxy.returncode == via_direct.returncode == 395 % 256
    assert set(LOG_LINE.findall(via_proxy.stderr)) == set(LOG_LINE.findall(via_direct.stderr))
    assert "<Error> executeQuery" in via_proxy.stderr


def test_ask_is_a_client_side_syntax_error(proxy, direct):
    """clickhouse-client 18.16 parses every query itself: `ASK '…'` never reaches the server or the proxy.

    A user of this client sees the client's own syntax error (code 62) either way; ASK needs a client
    that sends text as-is (clickhouse-driver, HTTP).
    """
    for q in ("ASK 'how many rows?'", "EXPLAIN ASK 'how many rows?'"):
        via_proxy, via_direct = both(proxy, direct, query=q)
        assert via_proxy.user_view() == via_direct.user_view()
        assert via_proxy.returncode == 62


@pytest.mark.proxy_only
def test_the_table_function_spelling_reaches_aurora(proxy):
    """`SELECT * FROM ask('…')` parses in clickhouse-client, so the proxy gets it and answers it (here: no model
    configured, said in Aurora's words, not ClickHouse's "Unknown table function")."""
    for q in ("SELECT * FROM ask('how many rows?')", "SELECT * FROM explain_ask('how many rows?')"):
        result = clickhouse_client(proxy, query=q)
        assert result.returncode == 48, result.stderr
        assert "Aurora: ASK needs an LLM endpoint and none is configured" in result.stderr


def test_sql_mentioning_ask_is_plain_sql(proxy, direct):
    q = "SELECT 'ASK' AS ask, 'ask me' AS `ASK x` FORMAT TSVWithNames"
    via_proxy, via_direct = both(proxy, direct, query=q)
    assert via_proxy.user_view() == via_direct.user_view()
    assert via_proxy.stdout == b"ask\tASK x\nASK\task me\n"
