"""Tenant scoping: a proxy user with `tenant = "acme"` sees only rows whose `tenant_id` is acme, in SQL on both
protocols and in ASK (a scripted model writing joins, subqueries, UNION and IN (SELECT …)); what cannot be proven
scoped is refused with code 497 and changes nothing. Every answer is compared with the same query filtered by
hand, straight to ClickHouse."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError

from conftest import exception_code, request
from support.llm import sql_answer
from support.servers import ProxyProcess

pytestmark = pytest.mark.proxy_only

ROWS = {
    "orders": "(tenant_id String, id UInt32, customer_id UInt32, total Float64)",
    "customers": "(tenant_id String, id UInt32, name String)",
}


@pytest.fixture(scope="module")
def tenant_db(clickhouse):
    db = f"tenants_{uuid.uuid4().hex[:8]}"
    admin = Client("127.0.0.1", port=clickhouse.tcp_port)
    admin.execute(f"CREATE DATABASE {db}")
    for table, columns in ROWS.items():
        admin.execute(f"CREATE TABLE {db}.{table} {columns} ENGINE = MergeTree ORDER BY id")
    admin.execute(f"CREATE TABLE {db}.currencies (code String) ENGINE = Memory")
    admin.execute(f"INSERT INTO {db}.currencies VALUES", [("EUR",)])
    admin.execute(f"INSERT INTO {db}.customers VALUES",
                  [("acme", 1, "Ann"), ("acme", 2, "Bob"), ("globex", 3, "Cid"), ("globex", 4, "Dee")])
    admin.execute(f"INSERT INTO {db}.orders VALUES", [("acme", 10, 1, 5.0), ("acme", 11, 2, 7.0), ("acme", 12, 1, 11.0),
                  ("globex", 20, 3, 100.0), ("globex", 21, 4, 200.0), ("globex", 22, 3, 300.0)])
    yield db
    admin.execute(f"DROP DATABASE {db}")
    admin.disconnect()


@pytest.fixture(scope="module")
def tenant_proxy(clickhouse, scripted_llm_server, tmp_path_factory, tenant_db):
    workdir = tmp_path_factory.mktemp("tenant")
    config = workdir / "proxy.toml"
    config.write_text(f"""
[[users]]
name = "acme-analyst"
password_sha256 = "{hashlib.sha256(b'acme-pw').hexdigest()}"
clickhouse_user = "default"
tenant = "acme"
""")
    p = ProxyProcess(
        f"127.0.0.1:{clickhouse.tcp_port}", f"http://127.0.0.1:{clickhouse.http_port}", workdir,
        ("--config", str(config), "--llm-base-url", scripted_llm_server.base_url, "--llm-model", "scripted",
         "--llm-timeout", "5s"),
    )
    p.start()
    yield p.endpoint
    problem = p.stop()
    assert problem is None, problem


AUTH = {"Authorization": "Basic " + base64.b64encode(b"acme-analyst:acme-pw").decode()}


def queries(db):
    """(through the tenant user, the same filtered by hand straight to ClickHouse)."""
    o = f"(SELECT * FROM {db}.orders WHERE tenant_id = 'acme')"
    c = f"(SELECT * FROM {db}.customers WHERE tenant_id = 'acme')"
    return [
        (f"SELECT count(), sum(total) FROM {db}.orders", f"SELECT count(), sum(total) FROM {o}"),
        (f"SELECT o.id, c.name FROM {db}.orders AS o ANY LEFT JOIN {db}.customers AS c ON o.customer_id = c.id "
         "ORDER BY o.id",
         f"SELECT o.id, c.name FROM {o} AS o ANY LEFT JOIN {c} AS c ON o.customer_id = c.id ORDER BY o.id"),
        (f"SELECT id FROM {db}.orders WHERE customer_id IN (SELECT id FROM {db}.customers) ORDER BY id",
         f"SELECT id FROM {o} WHERE customer_id IN (SELECT id FROM {c}) ORDER BY id"),
        (f"SELECT n FROM (SELECT count() AS n FROM {db}.orders) UNION ALL SELECT count() FROM {db}.customers",
         f"SELECT n FROM (SELECT count() AS n FROM {o}) UNION ALL SELECT count() FROM {c}"),
        (f"SELECT tenant_id, count() FROM {db}.customers GROUP BY tenant_id",
         f"SELECT tenant_id, count() FROM {c} GROUP BY tenant_id"),
    ]


def test_sql_of_a_tenant_user_sees_only_its_tenant_on_both_protocols(tenant_proxy, direct, tenant_db):
    admin = Client(direct.host, port=direct.native_port)
    client = Client(tenant_proxy.host, port=tenant_proxy.native_port, user="acme-analyst", password="acme-pw")
    try:
        for through, by_hand in queries(tenant_db):
            expected = admin.execute(by_hand)
            # (UNION ALL branches arrive in either order.)
            assert sorted(client.execute(through)) == sorted(expected), through
            # Over HTTP, the statement in the body and in the query parameter alike.
            answer = request(tenant_proxy, body=through + " FORMAT JSONCompact", headers=AUTH)
            straight = request(direct, body=by_hand + " FORMAT JSONCompact")
            assert answer.status == 200, answer.text
            assert sorted(json.loads(answer.body)["data"]) == sorted(json.loads(straight.body)["data"]), through
            by_param = request(tenant_proxy, method="GET", params={"query": through}, headers=AUTH)
            straight = request(direct, method="GET", params={"query": by_hand})
            assert by_param.status == 200, by_param.text
            assert sorted(by_param.body.splitlines()) == sorted(straight.body.splitlines()), through
        # No globex row ever: the tenant column itself says so.
        assert client.execute(f"SELECT DISTINCT tenant_id FROM {tenant_db}.orders") == [("acme",)]
    finally:
        client.disconnect()
        admin.disconnect()


def test_what_cannot_be_proven_scoped_is_refused_and_changes_nothing(tenant_proxy, direct, tenant_db):
    refused = [
        f"INSERT INTO {tenant_db}.orders VALUES ('globex', 99, 3, 1)",
        f"ALTER TABLE {tenant_db}.orders DELETE WHERE 1",
        f"SELECT * FROM {tenant_db}.currencies",
        "SELECT * FROM numbers(3)",
        "SELECT name FROM system.tables",
        f"SELECT 1 WHERE 10 IN {tenant_db}.orders",
    ]
    client = Client(tenant_proxy.host, port=tenant_proxy.native_port, user="acme-analyst", password="acme-pw")
    try:
        for sql in refused:
            with pytest.raises(DriverError) as raised:
                client.execute(sql)
            assert raised.value.code == 497 and "tenant scoping" in str(raised.value), (sql, raised.value)
            answer = request(tenant_proxy, body=sql, headers=AUTH)
            assert (answer.status, exception_code(answer)) == (403, 497), (sql, answer.text)
        # The connection still works after its refusals.
        assert client.execute(f"SELECT count() FROM {tenant_db}.orders") == [(3,)]
    finally:
        client.disconnect()
    admin = Client(direct.host, port=direct.native_port)
    try:
        assert admin.execute(f"SELECT count() FROM {tenant_db}.orders") == [(6,)]
    finally:
        admin.disconnect()


def normal(row) -> tuple:
    """A row with numbers as floats (JSON quotes 64-bit integers)."""
    def one(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v
    return tuple(one(v) for v in row)


def test_ask_of_a_tenant_user_reads_only_its_tenant(tenant_proxy, direct, tenant_db, scripted_llm):
    db = tenant_db
    generated = {
        "revenue by customer": f"SELECT c.name, sum(o.total) AS revenue FROM {db}.orders AS o "
                               f"ANY LEFT JOIN {db}.customers AS c ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name",
        "orders of known customers": f"SELECT count() FROM {db}.orders WHERE customer_id IN "
                                     f"(SELECT id FROM {db}.customers)",
        "rows everywhere": f"SELECT count() FROM {db}.orders UNION ALL SELECT count() FROM {db}.customers",
    }
    scripted_llm.script([{"match": q, "responses": [sql_answer(sql)]} for q, sql in generated.items()])
    expected = {
        "revenue by customer": [("Ann", 16.0), ("Bob", 7.0)],
        "orders of known customers": [(3,)],
        "rows everywhere": [(3,), (2,)],
    }
    client = Client(tenant_proxy.host, port=tenant_proxy.native_port, user="acme-analyst", password="acme-pw",
                    database=db)
    try:
        for question, rows in expected.items():
            got = client.execute(f"ASK '{question}'")
            assert sorted(got) == sorted(rows), (question, got)
            answer = request(tenant_proxy, params={"database": db}, body=f"ASK '{question}' FORMAT JSONCompact",
                             headers=AUTH)
            assert answer.status == 200, answer.text
            assert sorted(normal(r) for r in json.loads(answer.body)["data"]) == sorted(map(normal, rows)), answer.text
    finally:
        client.disconnect()
