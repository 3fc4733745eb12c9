"""Proxy users (`[[users]]`): clients log in to the proxy with the proxy's password and ClickHouse sees the mapped
user; refused logins send nothing upstream; per-user limits (concurrency with a queue, rate, execution time) hold
across both protocols; every query has a query id; SIGHUP reloads the users without dropping connections.

The users of the test server are `default` (no password), `alice`/`alice-secret` and `reader`/`reader-secret`.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import re
import signal
import threading
import time
import uuid

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError

from conftest import exception_code, metric, request
from support.servers import ProxyProcess

pytestmark = pytest.mark.proxy_only

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def sha(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


AUDIT = "aurora_test_audit.log"


def users_toml(secret_file, analyst_password: str = "analyst-pw") -> str:
    return f"""
audit_table = "{AUDIT}"

[[users]]
name = "analyst"
password_sha256 = "{sha(analyst_password)}"
clickhouse_user = "alice"
clickhouse_password_file = "{secret_file}"
networks = ["127.0.0.0/8", "::1/128"]
max_concurrent_queries = 4
max_queue_size = 12
max_queue_time = "30s"

[[users]]
name = "far"
password_sha256 = "{sha('far-pw')}"
clickhouse_user = "default"
networks = ["10.0.0.0/8"]

[[users]]
name = "metered"
password_sha256 = "{sha('metered-pw')}"
clickhouse_user = "default"
requests_per_minute = 6

[[users]]
name = "hasty"
password_sha256 = "{sha('hasty-pw')}"
clickhouse_user = "alice"
clickhouse_password_file = "{secret_file}"
max_execution_time = "2s"
allow_ask = false
"""


@pytest.fixture(scope="module")
def gateway(clickhouse, tmp_path_factory):
    """A proxy with proxy users, in front of the session ClickHouse; yields (endpoint, process, config path)."""
    workdir = tmp_path_factory.mktemp("gateway")
    secret = workdir / "alice.secret"
    secret.write_text("alice-secret\n")
    config = workdir / "proxy.toml"
    config.write_text(users_toml(secret))
    p = ProxyProcess(
        f"127.0.0.1:{clickhouse.tcp_port}",
        f"http://127.0.0.1:{clickhouse.http_port}",
        workdir,
        ("--config", str(config)),
    )
    p.start()
    yield p.endpoint, p, config, secret
    problem = p.stop()
    assert problem is None, problem


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


#: Every query of these tests asks to be logged (the test server does not log queries by default), so
#: system.query_log shows what reached ClickHouse and as whom.
LOGGED = {"log_queries": 1}


def native(endpoint, user: str, password: str, **kwargs) -> Client:
    return Client(endpoint.host, port=endpoint.native_port, user=user, password=password,
                  connect_timeout=5, send_receive_timeout=60, settings=LOGGED, **kwargs)


def logged(endpoint, body: str, params: dict | None = None, **kwargs):
    """An HTTP request whose query ClickHouse logs."""
    return request(endpoint, body=body, params={**LOGGED, **(params or {})}, **kwargs)


def native_error(endpoint, user, password, sql="SELECT 1", **kwargs) -> DriverError:
    client = native(endpoint, user, password, **kwargs)
    try:
        with pytest.raises(DriverError) as raised:
            client.execute(sql)
        return raised.value
    finally:
        client.disconnect()


def seen_by_clickhouse(direct, marker: str) -> list:
    """(user, query_id) of the query_log rows whose query text holds `marker`."""
    admin = Client(direct.host, port=direct.native_port, settings=LOGGED)
    try:
        # One logged query of its own, so that the table exists before the first look.
        admin.execute("SELECT 1")
        admin.execute("SYSTEM FLUSH LOGS")
        return admin.execute(
            "SELECT DISTINCT user, query_id FROM system.query_log "
            f"WHERE query LIKE '%{marker}%' AND query NOT LIKE '%system.query_log%'"
        )
    finally:
        admin.disconnect()


def test_a_mapped_user_logs_in_with_the_proxy_password_and_clickhouse_sees_the_other_user(gateway, direct):
    endpoint, *_ = gateway
    marker = uuid.uuid4().hex
    client = native(endpoint, "analyst", "analyst-pw")
    try:
        assert client.execute(f"SELECT 'native-{marker}'") == [(f"native-{marker}",)]
    finally:
        client.disconnect()
    # Every HTTP form of credentials.
    for i, kwargs in enumerate((
        {"headers": basic("analyst", "analyst-pw")},
        {"headers": {"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": "analyst-pw"}},
        {"params": {"user": "analyst", "password": "analyst-pw"}},
    )):
        answer = logged(endpoint, f"SELECT 'http{i}-{marker}'", **kwargs)
        assert (answer.status, answer.body) == (200, f"http{i}-{marker}\n".encode()), answer.text
    rows = seen_by_clickhouse(direct, marker)
    assert sorted(user for user, _ in rows) == ["alice"] * 4, rows
    # The proxy password is not alice's: straight to ClickHouse it is refused.
    assert exception_code(request(direct, body="SELECT 1", headers=basic("alice", "analyst-pw"))) == 193


def test_refused_logins_get_clickhouses_errors_and_send_nothing_upstream(gateway, direct):
    endpoint, *_ = gateway
    marker = uuid.uuid4().hex
    chosen_before = metric(endpoint, "aurora_proxy_node_chosen_total", protocol="native")
    cases = [("nosuch", "x", 192), ("analyst", "wrong", 193), ("far", "far-pw", 195)]
    for user, password, code in cases:
        error = native_error(endpoint, user, password, f"SELECT '{marker}'")
        assert error.code == code, error
        answer = logged(endpoint, f"SELECT '{marker}'", headers=basic(user, password))
        assert exception_code(answer) == code, answer.text
        assert answer.status == (403 if code == 195 else 401), answer.status
    # The refusals read like ClickHouse's own (the 18.16 wording).
    answer = request(endpoint, body="SELECT 1", headers=basic("nosuch", ""))
    assert "Unknown user nosuch" in answer.text and answer.headers.get("www-authenticate"), answer
    # No native connection went to a node, and no query reached ClickHouse.
    assert metric(endpoint, "aurora_proxy_node_chosen_total", protocol="native") == chosen_before
    assert seen_by_clickhouse(direct, marker) == []
    assert metric(endpoint, "aurora_proxy_logins_refused_total", protocol="http", code="195") >= 1


def sleepy(endpoint, how: str, marker: str, i: int) -> tuple:
    """One 2-second query of `analyst`; returns ("ok", started, ended) or ("error", code, message)."""
    sql = f"SELECT sleep(2), '{marker}-{i}'"
    started = time.monotonic()
    if how == "native":
        client = native(endpoint, "analyst", "analyst-pw")
        try:
            client.execute(sql)
            return ("ok", started, time.monotonic())
        except DriverError as e:
            return ("error", e.code, str(e))
        finally:
            client.disconnect()
    answer = request(endpoint, body=sql, headers=basic("analyst", "analyst-pw"))
    if answer.status == 200:
        return ("ok", started, time.monotonic())
    return ("error", exception_code(answer), answer.text)


def test_concurrency_limit_queues_and_refuses_across_both_protocols(gateway, direct):
    """17 sleepy queries at once, limit 4 and queue 12: 4 run at a time, 12 wait their turn, 1 is refused (202)."""
    endpoint, *_ = gateway
    marker = uuid.uuid4().hex
    peak, stop = [0], threading.Event()

    def watch():
        admin = Client(direct.host, port=direct.native_port)
        try:
            while not stop.is_set():
                (n,), = admin.execute(
                    f"SELECT count() FROM system.processes WHERE query LIKE '%{marker}-%' "
                    "AND query NOT LIKE '%system.processes%'")
                peak[0] = max(peak[0], n)
                time.sleep(0.05)
        finally:
            admin.disconnect()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=17) as pool:
            futures = [pool.submit(sleepy, endpoint, "native" if i % 2 else "http", marker, i) for i in range(17)]
            results = [f.result(timeout=90) for f in futures]
    finally:
        stop.set()
        watcher.join()
    refused = [r for r in results if r[0] == "error"]
    done = [r for r in results if r[0] == "ok"]
    assert len(refused) == 1 and refused[0][1] == 202, refused
    assert "Too many simultaneous queries" in refused[0][2]
    assert len(done) == 16
    # 16 queries of 2 s, four at a time: four waves, so the last ends after about 8 s.
    assert max(end for _, _, end in done) - min(start for _, start, _ in done) >= 7.5
    assert peak[0] == 4, f"at most 4 ran at once, and 4 did: saw {peak[0]}"
    assert metric(endpoint, "aurora_proxy_user_queries_refused_total", user="analyst", reason="queue_full") >= 1


def test_requests_per_minute_refuses_with_retry_after_on_both_protocols(gateway):
    endpoint, *_ = gateway
    outcomes = []
    for i in range(6):
        answer = request(endpoint, body=f"SELECT {i}", headers=basic("metered", "metered-pw"))
        outcomes.append(answer.status)
    assert outcomes == [200] * 6, outcomes
    answer = request(endpoint, body="SELECT 7", headers=basic("metered", "metered-pw"))
    assert (answer.status, exception_code(answer)) == (429, 202), answer.text
    assert int(answer.headers["retry-after"]) >= 1
    # The same bucket on the native side.
    error = native_error(endpoint, "metered", "metered-pw")
    assert error.code == 202 and "requests_per_minute" in str(error), error


def running(direct, marker: str) -> int:
    admin = Client(direct.host, port=direct.native_port)
    try:
        (n,), = admin.execute(
            f"SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' "
            "AND query NOT LIKE '%system.processes%'")
        return n
    finally:
        admin.disconnect()


def wait_until_gone(direct, marker: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while running(direct, marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(direct, marker) == 0, "the query still runs on the server"


def test_max_execution_time_kills_the_query_on_the_server(gateway, direct):
    endpoint, *_ = gateway
    # Minutes of work on these cores; the proxy user may run it 2 s.
    for how in ("native", "http"):
        marker = uuid.uuid4().hex
        sql = f"SELECT count() FROM numbers(1000000000000) WHERE NOT ignore('{marker}')"
        started = time.monotonic()
        if how == "native":
            error = native_error(endpoint, "hasty", "hasty-pw", sql)
            code, text = error.code, str(error)
        else:
            answer = request(endpoint, body=sql, headers=basic("hasty", "hasty-pw"))
            code, text = exception_code(answer), answer.text
        took = time.monotonic() - started
        assert code == 159 and "Timeout exceeded" in text, (how, code, text)
        assert 1.9 <= took < 8, (how, took)
        wait_until_gone(direct, marker)
    # The connection pool and the user still work afterwards.
    answer = request(endpoint, body="SELECT 1", headers=basic("hasty", "hasty-pw"))
    assert (answer.status, answer.body) == (200, b"1\n")
    client = native(endpoint, "hasty", "hasty-pw")
    try:
        assert client.execute("SELECT 2") == [(2,)]
    finally:
        client.disconnect()


def test_ask_refused_where_allow_ask_is_false(gateway):
    endpoint, *_ = gateway
    error = native_error(endpoint, "hasty", "hasty-pw", "ASK 'how many events are there?'")
    assert error.code == 497 and "allow_ask" in str(error), error
    answer = request(endpoint, body="ASK 'how many events are there?'", headers=basic("hasty", "hasty-pw"))
    assert (answer.status, exception_code(answer)) == (403, 497), answer.text


def test_every_query_has_a_query_id(gateway, direct):
    endpoint, *_ = gateway
    marker = uuid.uuid4().hex
    answer = logged(endpoint, f"SELECT '{marker}'", headers=basic("analyst", "analyst-pw"))
    given = answer.headers.get("x-clickhouse-query-id", "")
    assert UUID.match(given), answer.headers
    own = logged(endpoint, f"SELECT 'own-{marker}'", params={"query_id": f"mine-{marker}"},
                 headers=basic("analyst", "analyst-pw"))
    assert own.headers.get("x-clickhouse-query-id") == f"mine-{marker}"
    client = native(endpoint, "analyst", "analyst-pw")
    try:
        client.execute(f"SELECT 'native-{marker}'")
    finally:
        client.disconnect()
    ids = dict((query_id, user) for user, query_id in seen_by_clickhouse(direct, marker))
    assert given in ids and f"mine-{marker}" in ids, ids
    assert len(ids) == 3 and all(UUID.match(i) or i.startswith("mine-") for i in ids), ids


def test_sighup_reloads_users_without_dropping_connections_and_keeps_them_on_a_bad_file(gateway):
    endpoint, process, config, secret = gateway
    held = native(endpoint, "analyst", "analyst-pw")
    try:
        assert held.execute("SELECT 1") == [(1,)]
        config.write_text(users_toml(secret, analyst_password="rotated-pw"))
        process.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while request(endpoint, body="SELECT 1", headers=basic("analyst", "rotated-pw")).status != 200:
            assert time.monotonic() < deadline, "the new password was not taken"
            time.sleep(0.1)
        assert exception_code(request(endpoint, body="SELECT 1", headers=basic("analyst", "analyst-pw"))) == 193
        # The connection logged in before the reload goes on.
        assert held.execute("SELECT 2") == [(2,)]
        # A file with a mistake is refused; the users in force stay.
        config.write_text(users_toml(secret, analyst_password="third-pw") + "\nno_such_key = 1\n")
        process.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "configuration refused" not in process.log_path.read_text():
            assert time.monotonic() < deadline, "the bad file was not reported"
            time.sleep(0.1)
        assert "no_such_key" in process.log_path.read_text()
        assert request(endpoint, body="SELECT 1", headers=basic("analyst", "rotated-pw")).status == 200
        assert process.alive()
    finally:
        held.disconnect()
        config.write_text(users_toml(secret))
        process.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while request(endpoint, body="SELECT 1", headers=basic("analyst", "analyst-pw")).status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_every_statement_leaves_an_audit_record(gateway, direct):
    endpoint, *_ = gateway
    marker = uuid.uuid4().hex
    client = native(endpoint, "analyst", "analyst-pw")
    try:
        client.execute(f"SELECT 'native-ok-{marker}'")
        with pytest.raises(DriverError):
            client.execute(f"SELECT no_such_column_{marker}")
    finally:
        client.disconnect()
    ok = logged(endpoint, f"SELECT 'http-ok-{marker}'", headers=basic("analyst", "analyst-pw"))
    bad = logged(endpoint, f"SELECT no_such_column_{marker}", headers=basic("analyst", "analyst-pw"))
    refused = native_error(endpoint, "hasty", "hasty-pw", f"ASK 'audit {marker}'")
    assert ok.status == 200 and bad.status != 200 and refused.code == 497
    admin = Client(direct.host, port=direct.native_port)
    try:
        deadline = time.monotonic() + 10
        rows = []
        while time.monotonic() < deadline:
            try:
                rows = admin.execute(
                    f"SELECT protocol, proxy_user, clickhouse_user, kind, outcome, code, query_id, query, question "
                    f"FROM {AUDIT} WHERE query LIKE '%{marker}%' OR question LIKE '%{marker}%' ORDER BY time")
            except DriverError:
                rows = []  # the table appears with the first batch
            if len(rows) >= 5:
                break
            time.sleep(0.3)
        by = {(r[0], r[4]): r for r in rows}
        assert len(rows) == 5, rows
        assert by[("native", "ok")][1:4] == ("analyst", "alice", "sql") and UUID.match(by[("native", "ok")][6])
        assert by[("native", "error")][5] == 47  # UNKNOWN_IDENTIFIER, ClickHouse's own code
        assert by[("http", "ok")][1:3] == ("analyst", "alice") and UUID.match(by[("http", "ok")][6])
        assert ("http", "error") in by
        refused_row = [r for r in rows if r[4] == "refused"]
        assert refused_row and refused_row[0][3] == "ask" and refused_row[0][5] == 497, rows
        # No password reached the table.
        (leaks,), = admin.execute(f"SELECT count() FROM {AUDIT} WHERE position(query, 'analyst-pw') > 0 "
                                  "OR position(query, 'alice-secret') > 0")
        assert leaks == 0
    finally:
        admin.disconnect()
    assert metric(endpoint, "aurora_proxy_audit_records_total") >= 5
