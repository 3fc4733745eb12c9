"""Bodies stream both ways: INSERTs of 50k rows (plain and gzip), compressed answers, and 5M rows read back
with the digest of the bytes compared (neither side holds them whole)."""

from __future__ import annotations

import gzip

import pytest

from conftest import compare, metric, request, request_digest

ROWS = 50_000


def tsv_rows(n: int) -> bytes:
    return b"".join(b"%d\tname-%d\t%d.5\n" % (i, i, i % 1000) for i in range(n))


def pieces(data: bytes, size: int = 7919):
    """The body in odd-sized pieces, sent with chunked transfer encoding."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def make_table(direct, db, table: str = "rows") -> str:
    name = f"{db}.{table}"
    ddl = f"CREATE TABLE {name} (id UInt64, name String, v Float64) ENGINE = MergeTree ORDER BY id"
    assert request(direct, body=ddl).status == 200
    return name


def digest_of_table(direct, name) -> bytes:
    return request(direct, body=f"SELECT count(), sum(id), groupBitXor(cityHash64(name)), sum(v) FROM {name}").body


@pytest.mark.parametrize("encoding", ["plain", "gzip"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_insert_50k_tsv_rows(proxy, direct, db, encoding, framing):
    name = make_table(direct, db)
    data = tsv_rows(ROWS)
    headers = {}
    if encoding == "gzip":
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    body = data if framing == "content-length" else pieces(data)
    answer = request(proxy, params={"query": f"INSERT INTO {name} FORMAT TSV"}, body=body, headers=headers)
    assert (answer.status, answer.body) == (200, b""), answer.text
    # The same rows inserted directly give the same table.
    reference = make_table(direct, db, "rows_direct")
    again = request(direct, params={"query": f"INSERT INTO {reference} FORMAT TSV"}, body=data, headers=headers)
    assert again.status == 200, again.text
    assert digest_of_table(direct, name) == digest_of_table(direct, reference)
    assert digest_of_table(direct, name).startswith(b"%d\t%d\t" % (ROWS, ROWS * (ROWS - 1) // 2))


def test_insert_with_the_query_in_the_body(proxy, direct, db):
    name = make_table(direct, db)
    body = f"INSERT INTO {name} FORMAT TSV\n".encode() + tsv_rows(1000)
    answer = request(proxy, body=pieces(body, 100))
    assert answer.status == 200, answer.text
    assert request(direct, body=f"SELECT count() FROM {name}").body == b"1000\n"


def test_gzip_answers_stay_compressed_and_identical(proxy, direct, table):
    params = {"enable_http_compression": "1", "query": f"SELECT * FROM {table} ORDER BY id FORMAT TSV"}
    answer = compare(proxy, direct, method="GET", params=params, headers={"Accept-Encoding": "gzip"})
    assert answer.headers.get("content-encoding") == "gzip"
    plain = request(direct, method="GET", params={"query": params["query"]})
    assert gzip.decompress(answer.body) == plain.body


def test_clickhouse_compressed_insert_passes(proxy, direct, db):
    # decompress=1 bodies are ClickHouse's own compressed blocks; the proxy must not look inside. Here the
    # body is plain but the flag is honoured by ClickHouse — the proxy passes both untouched.
    name = make_table(direct, db)
    answer = compare(proxy, direct, params={"query": f"INSERT INTO {name} FORMAT TSV", "decompress": "1"},
                     body=b"not compressed\n")
    assert answer.status != 200


def test_5m_rows_stream_identically(proxy, direct):
    params = {"query": "SELECT number, toString(number) FROM numbers(5000000) FORMAT RowBinary"}
    through = request_digest(proxy, params)
    reference = request_digest(direct, params)
    assert through == reference
    assert through[0] == 200 and through[1] > 5_000_000 * 8


def test_a_large_insert_streams(proxy, direct, db):
    """~60 MB in 64 KiB pieces, generated on the fly."""
    name = make_table(direct, db)
    n, block = 2_000_000, 50_000

    def generate():
        for start in range(0, n, block):
            yield b"".join(b"%d\tx\t1\n" % i for i in range(start, start + block))

    answer = request(proxy, params={"query": f"INSERT INTO {name} FORMAT TSV"}, body=generate(), timeout=300)
    assert answer.status == 200, answer.text
    assert request(direct, body=f"SELECT count(), sum(id) FROM {name}").body == f"{n}\t{n * (n - 1) // 2}\n".encode()


def test_metrics_count_relayed_bytes(proxy):
    if not proxy.is_proxy:
        pytest.skip("metrics are the proxy's")
    before = metric(proxy, "aurora_proxy_transferred_bytes_total", protocol="http", direction="upstream_to_client")
    assert request(proxy, body="SELECT * FROM numbers(100000) FORMAT RowBinary").status == 200
    after = metric(proxy, "aurora_proxy_transferred_bytes_total", protocol="http", direction="upstream_to_client")
    assert after - before >= 800_000
