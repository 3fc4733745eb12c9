"""Every output format arrives byte for byte as ClickHouse writes it, by GET and by POST, and the requests
Grafana's ClickHouse plugin sends in HTTP mode (always `default_format=Native`) get ClickHouse's own answers."""

from __future__ import annotations

import pytest

from conftest import compare, request, without_elapsed

BYTE_EXACT_FORMATS = ["TSVWithNamesAndTypes", "CSVWithNames", "Native", "RowBinary", "TSKV", "Values", "JSONEachRow"]


@pytest.mark.parametrize("fmt", BYTE_EXACT_FORMATS)
def test_formats_are_byte_identical_by_post(proxy, direct, table, fmt):
    answer = compare(proxy, direct, body=f"SELECT * FROM {table} ORDER BY id FORMAT {fmt}")
    assert answer.status == 200 and len(answer.body) > 1000


@pytest.mark.parametrize("fmt", BYTE_EXACT_FORMATS)
def test_formats_are_byte_identical_by_get_with_default_format(proxy, direct, table, fmt):
    answer = compare(proxy, direct, method="GET",
                     params={"query": f"SELECT * FROM {table} ORDER BY id", "default_format": fmt})
    assert answer.status == 200


@pytest.mark.parametrize("fmt", ["JSON", "JSONCompact"])
def test_json_is_identical_but_for_the_elapsed_time(proxy, direct, table, fmt):
    query = f"SELECT * FROM {table} ORDER BY id LIMIT 100 FORMAT {fmt}"
    through, reference = request(proxy, body=query), request(direct, body=query)
    assert (through.status, through.headers["content-type"]) == (reference.status, reference.headers["content-type"])
    assert without_elapsed(through.body) == without_elapsed(reference.body)
    assert without_elapsed(through.body)["rows"] == 100


def test_settings_database_and_query_id_parameters_pass(proxy, direct, table, db):
    answer = compare(proxy, direct, method="GET", params={
        "query": "SELECT count(), max(id) FROM t", "database": db, "max_threads": "1",
        "max_result_rows": "10", "query_id": "", "output_format_write_statistics": "0",
    })
    assert answer.body == b"1000\t999\n"
    refused = compare(proxy, direct, method="GET", params={
        "query": "SELECT * FROM t", "database": db, "max_result_rows": "10", "result_overflow_mode": "throw"})
    assert refused.status == 500 and b"Code: 396" in refused.body


def test_query_parameter_and_body_are_concatenated(proxy, direct):
    answer = compare(proxy, direct, params={"query": "SELECT 1 +"}, body=" 2 FORMAT TSV")
    assert answer.body == b"3\n"


def test_errors_of_clickhouse_pass_untouched(proxy, direct):
    answer = compare(proxy, direct, body="SELECT * FROM no_such_database.no_such_table")
    assert answer.status == 404 and answer.body.startswith(b"Code: 81")
    syntax = compare(proxy, direct, body="SELEC 1")
    assert syntax.status == 400


@pytest.mark.parametrize("path", ["/ping", "/replicas_status", "/", "/play", "/no/such/handler"])
def test_service_paths_pass(proxy, direct, path):
    compare(proxy, direct, method="GET", path=path)


def test_an_error_after_the_first_rows_reaches_the_client(proxy, direct):
    # ClickHouse has sent 200 and rows when the exception happens: it appends the error to the body.
    query = "SELECT number, throwIf(number = 300000) FROM numbers(1000000) FORMAT TSV"
    settings = {"max_block_size": "1000", "send_progress_in_http_headers": "0"}
    through, reference = request(proxy, params=settings, body=query), request(direct, params=settings, body=query)
    assert through.status == reference.status
    assert b"Code: 395" in through.body and b"Code: 395" in reference.body


GRAFANA_QUERIES = [
    "SELECT 1",
    "SELECT version()",
    "SHOW DATABASES",
    'SHOW TABLES FROM "{db}"',
    'DESC TABLE "{db}"."t"',
    "SELECT name FROM system.databases ORDER BY name",
    "SELECT name, engine FROM system.tables WHERE database = '{db}' ORDER BY name",
    "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 't' ORDER BY name",
    "SELECT name FROM system.functions WHERE is_aggregate = 0 ORDER BY name LIMIT 50",
    "SELECT name FROM system.functions WHERE is_aggregate = 1 ORDER BY name",
    "SELECT toStartOfMinute(dt) AS time, count() FROM \"{db}\".\"t\" WHERE dt >= toDateTime(1704067200) "
    "GROUP BY time ORDER BY time",
]


@pytest.mark.parametrize("query", GRAFANA_QUERIES)
def test_grafana_plugin_queries_in_http_mode(proxy, direct, table, db, query):
    text = query.format(db=db)
    # clickhouse-go (under the plugin) posts the query as the body with default_format=Native.
    posted = compare(proxy, direct, params={"default_format": "Native"}, body=text)
    assert posted.status == 200, posted.text
    got = compare(proxy, direct, method="GET", params={"query": text, "default_format": "Native"})
    assert got.body == posted.body
