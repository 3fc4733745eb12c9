"""Authentication in its three HTTP forms, refusals (wrong password, read-only user, GET being read-only) and
sessions pass through the proxy with ClickHouse's own answers."""

from __future__ import annotations

import base64
import uuid

from conftest import compare, exception_code, request

WHO = "SELECT user FROM system.processes WHERE query LIKE '%{marker}%' FORMAT TSV"


def who(marker: str) -> str:
    return WHO.format(marker=marker)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth(proxy, direct):
    marker = uuid.uuid4().hex
    answer = compare(proxy, direct, body=who(marker), headers=basic("alice", "alice-secret"))
    assert answer.body == b"alice\n"


def test_x_clickhouse_user_and_key_headers(proxy, direct):
    marker = uuid.uuid4().hex
    answer = compare(proxy, direct, body=who(marker),
                     headers={"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "alice-secret"})
    assert answer.body == b"alice\n"


def test_user_and_password_parameters(proxy, direct):
    marker = uuid.uuid4().hex
    answer = compare(proxy, direct, method="GET",
                     params={"user": "alice", "password": "alice-secret", "query": who(marker)})
    assert answer.body == b"alice\n"


def test_wrong_password_gets_the_same_refusal(proxy, direct):
    for kwargs in (
        {"headers": basic("alice", "wrong")},
        {"headers": {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "wrong"}},
        {"params": {"user": "alice", "password": "wrong"}},
    ):
        answer = compare(proxy, direct, body="SELECT 1", **kwargs)
        assert answer.status in (401, 403, 500) and exception_code(answer) == 193, answer.text


def test_reader_cannot_insert(proxy, direct, db):
    assert request(direct, body=f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory").status == 200
    answer = compare(proxy, direct, body=f"INSERT INTO {db}.t VALUES (1)", headers=basic("reader", "reader-secret"))
    assert exception_code(answer) == 164, answer.text
    readable = compare(proxy, direct, body=f"SELECT count() FROM {db}.t", headers=basic("reader", "reader-secret"))
    assert readable.body == b"0\n"


def test_get_is_read_only(proxy, direct, db):
    assert request(direct, body=f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory").status == 200
    answer = compare(proxy, direct, method="GET", params={"query": f"INSERT INTO {db}.t VALUES (1)"})
    assert exception_code(answer) == 164, answer.text
    ddl = compare(proxy, direct, method="GET", params={"query": f"CREATE TABLE {db}.u (x UInt8) ENGINE = Memory"})
    assert exception_code(ddl) == 164, ddl.text
    assert request(direct, body=f"SELECT count() FROM {db}.t").body == b"0\n"


def test_a_session_keeps_a_temporary_table_across_requests(proxy):
    session = {"session_id": f"aurora-{uuid.uuid4().hex}", "session_timeout": "30"}
    created = request(proxy, params=session, body="CREATE TEMPORARY TABLE tmp (x UInt32) ENGINE = Memory")
    assert created.status == 200, created.text
    filled = request(proxy, params=session, body="INSERT INTO tmp SELECT number FROM numbers(10)")
    assert filled.status == 200, filled.text
    summed = request(proxy, params=session, body="SELECT sum(x) FROM tmp")
    assert (summed.status, summed.body) == (200, b"45\n")
    # Without the session the table does not exist, exactly as ClickHouse says.
    alone = request(proxy, body="SELECT sum(x) FROM tmp")
    assert exception_code(alone) == 60, alone.text
