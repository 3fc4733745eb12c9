"""ASK and EXPLAIN ASK through clickhouse-driver (which sends query text as-is).

Without an LLM configured the proxy must still answer ASK itself: a ServerException that names ASK,
never forwarding the statement to ClickHouse (which would say "Syntax error", code 62).
(Debian's clickhouse-client parses queries itself and cannot send ASK: see test_clickhouse_client.py.)
"""

from __future__ import annotations

import pytest
from clickhouse_driver import errors

from support.driver import connect

ASK_STATEMENTS = [
    "ASK 'how many rows are in the events table?'",
    "ask 'lower case works too'",
    "  /* leading comment */ ASK 'with a comment'",
    "-- line comment\nASK 'it''s quoted'",
    "ASK 'with format' FORMAT JSON",
    "EXPLAIN ASK 'what would you run?'",
    "explain   ask 'spacing'",
]


@pytest.mark.proxy_only
@pytest.mark.parametrize("statement", ASK_STATEMENTS)
def test_ask_is_answered_by_aurora(proxy, statement):
    client = connect(proxy)
    with pytest.raises(errors.ServerException) as info:
        client.execute(statement)
    assert "ASK" in info.value.message, info.value.message
    assert "Syntax error" not in info.value.message  # it did not reach ClickHouse
    assert client.execute("SELECT 'after ask'") == [("after ask",)]  # the session goes on


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'ASK' AS ask",
        "SELECT 'ASK ''x''' AS `ASK`",
        "/* ASK 'not a question' */ SELECT 1 AS asking",
        "SELECT ask FROM (SELECT 'EXPLAIN ASK' AS ask)",
        "WITH 'ASK' AS ask SELECT lower(ask)",
    ],
)
def test_sql_mentioning_ask_is_plain_sql(proxy, direct, query):
    answers = [connect(e).execute(query, with_column_types=True) for e in (proxy, direct)]
    assert answers[0] == answers[1]


def test_table_named_ask(proxy, direct, db):
    connect(direct).execute(f"CREATE TABLE {db}.ask (question String) ENGINE = Memory")
    connect(proxy).execute(f"INSERT INTO {db}.ask VALUES", [("why?",)])
    answers = [connect(e).execute(f"SELECT question FROM {db}.ask") for e in (proxy, direct)]
    assert answers[0] == answers[1] == [("why?",)]
