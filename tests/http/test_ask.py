"""`ASK` and `EXPLAIN ASK` over HTTP: recognised in the `query` parameter and in the body (however the body is
cut into pieces), answered in ClickHouse's error shape; SQL that only looks similar still reaches ClickHouse."""

from __future__ import annotations

import pytest

from conftest import compare, exception_code, metric, request

pytestmark = pytest.mark.proxy_only

# In the error shape of the ClickHouse behind the proxy (18.16 here: `Code: N, e.displayText() = …`).
NOT_YET = "Code: 48, e.displayText() = DB::Exception: Aurora: ASK needs an LLM endpoint and none is configured (--llm-base-url, --llm-model); the question was not sent anywhere"

ASKS = [
    ("ASK", "ASK 'top 5 tenants by revenue this week'"),
    ("ASK", "  ask 'how many events yesterday?' FORMAT JSON"),
    ("ASK", "-- a comment\n/* another */ Ask 'it''s a question' SETTINGS max_rows_to_read = 1000"),
    ("EXPLAIN ASK", "EXPLAIN ASK 'which tables hold page views'"),
    ("EXPLAIN ASK", "explain\n\task 'x';"),
]


def assert_not_yet(answer, verb: str):
    assert answer.status == 501, answer.text
    assert answer.headers["x-clickhouse-exception-code"] == "48"
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text.startswith(NOT_YET), answer.text
    assert answer.text.endswith(", e.what() = DB::Exception\n"), answer.text


@pytest.mark.parametrize("verb,text", ASKS)
def test_ask_in_the_query_parameter(proxy, verb, text):
    assert_not_yet(request(proxy, method="GET", params={"query": text}), verb)
    assert_not_yet(request(proxy, method="POST", params={"query": text, "database": "default"}), verb)


@pytest.mark.parametrize("verb,text", ASKS)
def test_ask_in_the_body(proxy, verb, text):
    assert_not_yet(request(proxy, body=text), verb)


@pytest.mark.parametrize("verb,text", ASKS)
def test_ask_in_a_body_cut_into_single_bytes(proxy, verb, text):
    data = text.encode()
    assert_not_yet(request(proxy, body=(data[i:i + 1] for i in range(len(data)))), verb)


def test_malformed_ask_is_a_syntax_error(proxy):
    for kwargs in ({"body": "ASK 42"}, {"method": "GET", "params": {"query": "ASK 'unterminated"}}):
        answer = request(proxy, **kwargs)
        assert answer.status == 400, answer.text
        assert exception_code(answer) == 62
        assert answer.text.startswith("Code: 62, e.displayText() = DB::Exception: Aurora: syntax error in ASK statement")
        assert answer.text.endswith(", e.what() = DB::Exception\n")


def test_an_oversized_ask_is_refused(proxy):
    answer = request(proxy, body=b"ASK '" + b"x" * (2 << 20) + b"'")
    assert answer.status == 413 and exception_code(answer) == 229, answer.text[:300]


@pytest.mark.parametrize("sql", [
    "SELECT 'ASK' AS ask FORMAT TSV",
    "ASKING 1",
    "EXPLAIN SELECT 1",
    "/* ASK 'not this' */ SELECT 2",
    "SELECT 1 -- ASK 'x'",
])
def test_sql_that_mentions_ask_reaches_clickhouse(proxy, direct, sql):
    compare(proxy, direct, body=sql)
    compare(proxy, direct, method="GET", params={"query": sql})


def test_ask_with_data_in_the_body_is_still_ask(proxy):
    # The parameter is the statement; ClickHouse would read the body as its continuation.
    answer = request(proxy, params={"query": "ASK 'x'"}, body="")
    assert_not_yet(answer, "ASK")


def test_ask_answers_are_counted(proxy):
    labels = {"protocol": "http", "kind": "ask", "outcome": "error"}
    before = metric(proxy, "aurora_proxy_queries_total", **labels)
    request(proxy, body="ASK 'count me'")
    assert metric(proxy, "aurora_proxy_queries_total", **labels) == before + 1
