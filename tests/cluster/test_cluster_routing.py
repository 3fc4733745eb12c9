"""aurora-proxy in front of a real three-node ClickHouse cluster (scripts/cluster.sh): every balance strategy
spreads native connections and HTTP requests as it says (seen from the nodes themselves and from the per-node
counters), a SIGKILLed node is skipped before the client sees anything and rejoins after its probes, queries in
flight on it end with a ClickHouse-shaped error, and HTTP sessions stay on their node."""

from __future__ import annotations

import collections
import http.client
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from support.cluster import WHO, ClickHouseCluster, metric, scrape
from support.servers import DIRECT_MODE, HOST, ProxyProcess

pytestmark = pytest.mark.proxy_only


# The fixtures live here rather than in a conftest.py: tests/http/conftest.py is imported as `conftest`, and a
# second one beside it would shadow it.
@pytest.fixture(scope="session")
def ch_cluster(tmp_path_factory):
    if DIRECT_MODE:
        pytest.skip("the cluster tests test the proxy's routing (AURORA_TEST_DIRECT=1)")
    cluster = ClickHouseCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_proxy(ch_cluster, tmp_path):
    """Factory: cluster_proxy(balance, **settings) -> a started ProxyProcess over the three nodes, probing every
    300 ms (a node is out after 2 failed probes and back after 2 good ones); stopped and checked at teardown."""
    started = []

    def start(balance: str = "least_connections", roles: dict | None = None, **settings) -> ProxyProcess:
        lines = [
            f'balance = "{balance}"',
            'health_interval = "300ms"',
            'health_timeout = "1s"',
            'connect_timeout = "1s"',
            "unhealthy_after = 2",
            "healthy_after = 2",
            'ask_feedback_table = "none"',
        ]
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
        config = tmp_path / f"proxy-{len(started)}.toml"
        config.write_text("\n".join(lines) + "\n\n" + ch_cluster.nodes_toml(roles))
        # upstream_* are unused with [[nodes]]; they point at node 1 so that a mistake would show.
        p = ProxyProcess(
            f"127.0.0.1:{ch_cluster.native_port(1)}",
            f"http://127.0.0.1:{ch_cluster.http_port(1)}",
            tmp_path,
            ("--config", str(config)),
        )
        p.start()
        started.append(p)
        # At start the proxy asks a node for the server version over HTTP, which takes one turn of the balance:
        # tests that count turns begin after it.
        deadline = time.monotonic() + 10
        while metric(scrape(p.metrics_port), "aurora_proxy_node_chosen_total", protocol="http") < 1:
            assert time.monotonic() < deadline, "the proxy's start-up request did not happen"
            time.sleep(0.05)
        return p

    yield start
    problems = [problem for p in started if (problem := p.stop()) is not None]
    assert not problems, "\n".join(problems)



def who_native(proxy, user: str = "default", password: str = "") -> str:
    client = Client(HOST, port=proxy.native_port, user=user, password=password, connect_timeout=5)
    try:
        return client.execute(WHO)[0][0]
    finally:
        client.disconnect()


class Answer:
    def __init__(self, status: int, headers: dict, text: str):
        self.status, self.headers, self.text = status, headers, text


def http_request(
    proxy, sql: str | bytes, conn: http.client.HTTPConnection | None = None, headers: dict | None = None, **params
) -> Answer:
    """POSTs `sql` with `params` (on `conn` when given: a keep-alive connection)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, proxy.http_port, timeout=10)
    try:
        body = sql if isinstance(sql, bytes) else sql.encode()
        conn.request("POST", "/?" + urllib.parse.urlencode(params), body=body, headers=headers or {})
        response = conn.getresponse()
        text = response.read().decode()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
    finally:
        if own:
            conn.close()


def who_http(proxy, **params) -> str:
    answer = http_request(proxy, WHO, **params)
    assert answer.status == 200, answer.text
    return answer.text.strip()


def health(proxy) -> str:
    try:
        return scrape(proxy.metrics_port, "/health")
    except urllib.error.HTTPError as e:  # 503 when no node is up
        return e.read().decode()


def wait_for(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - started


def chosen(proxy, node: str, protocol: str) -> float:
    return metric(scrape(proxy.metrics_port), "aurora_proxy_node_chosen_total", node=node, protocol=protocol)


def test_round_robin_spreads_connections_and_requests_evenly(cluster_proxy):
    proxy = cluster_proxy("round_robin")
    # (The proxy's own start-up request, which learns the server version, is counted too.)
    before = {(n, p): chosen(proxy, n, p) for n in ("ch1", "ch2", "ch3") for p in ("native", "http")}
    native = collections.Counter(who_native(proxy) for _ in range(30))
    http = collections.Counter(who_http(proxy) for _ in range(30))
    assert native == {"ch1": 10, "ch2": 10, "ch3": 10}, native
    assert http == {"ch1": 10, "ch2": 10, "ch3": 10}, http
    for node in ("ch1", "ch2", "ch3"):
        assert chosen(proxy, node, "native") - before[node, "native"] == native[node]
        assert chosen(proxy, node, "http") - before[node, "http"] == http[node]


def test_least_connections_puts_held_connections_on_the_least_loaded_node(cluster_proxy):
    proxy = cluster_proxy("least_connections")
    clients = [Client(HOST, port=proxy.native_port) for _ in range(9)]
    try:
        seen = collections.Counter(client.execute(WHO)[0][0] for client in clients)
        assert seen == {"ch1": 3, "ch2": 3, "ch3": 3}, seen
        text = scrape(proxy.metrics_port)
        for node in ("ch1", "ch2", "ch3"):
            assert metric(text, "aurora_proxy_node_active", node=node, protocol="native") == 3
    finally:
        for client in clients:
            client.disconnect()
    wait_for(
        lambda: metric(scrape(proxy.metrics_port), "aurora_proxy_node_active", protocol="native") == 0,
        5,
        "connections counted off their nodes",
    )


def test_random_reaches_every_node_and_first_healthy_only_the_first(cluster_proxy):
    spread = cluster_proxy("random")
    seen = collections.Counter(who_http(spread) for _ in range(60))
    assert set(seen) == {"ch1", "ch2", "ch3"} and min(seen.values()) >= 5, seen
    first = cluster_proxy("first_healthy")
    assert {who_native(first) for _ in range(5)} | {who_http(first) for _ in range(5)} == {"ch1"}


def test_hash_user_keeps_each_user_on_one_node(cluster_proxy):
    proxy = cluster_proxy("hash_user")
    users = {"default": "", "alice": "alice-secret", "reader": "reader-secret", "analyst": "analyst-secret"}
    for user, password in users.items():
        native = {who_native(proxy, user, password) for _ in range(4)}
        http = {who_http(proxy, user=user, password=password) for _ in range(4)}
        assert len(native) == 1 and native == http, (user, native, http)


def test_a_killed_node_is_skipped_at_once_and_rejoins_after_its_probes(ch_cluster, cluster_proxy):
    proxy = cluster_proxy("round_robin")
    assert {who_native(proxy) for _ in range(3)} == {"ch1", "ch2", "ch3"}
    ch_cluster.kill(2)
    try:
        # Straight after the kill, before any probe: every connection and request still succeeds, on the others.
        native = collections.Counter(who_native(proxy) for _ in range(12))
        http = collections.Counter(who_http(proxy) for _ in range(12))
        assert set(native) == {"ch1", "ch3"} and sum(native.values()) == 12, native
        assert set(http) == {"ch1", "ch3"} and sum(http.values()) == 12, http
        assert "ch2 down" in health(proxy)
        assert metric(scrape(proxy.metrics_port), "aurora_proxy_node_up", node="ch2") == 0
    finally:
        ch_cluster.restart(2)
    # Back after healthy_after (2) good probes 300 ms apart (with room for a loaded machine).
    took = wait_for(lambda: "ch2 up" in health(proxy), 5, "ch2 back up")
    assert took < 3.0, took
    assert "ch2" in {who_native(proxy) for _ in range(6)}


def test_a_query_running_on_a_node_that_dies_gets_a_clickhouse_error(ch_cluster, cluster_proxy):
    proxy = cluster_proxy("first_healthy")
    client = Client(HOST, port=proxy.native_port, send_receive_timeout=30)
    assert client.execute(WHO)[0][0] == "ch1"
    outcome = {}

    def slow():
        started = time.monotonic()
        try:
            client.execute("SELECT sleep(3)")
            outcome["result"] = "answered"
        except Exception as error:  # noqa: BLE001 - the test looks at what the user sees
            outcome["error"] = error
        outcome["took"] = time.monotonic() - started

    runner = threading.Thread(target=slow)
    runner.start()
    time.sleep(0.5)
    ch_cluster.kill(1)
    try:
        runner.join(timeout=20)
        assert not runner.is_alive(), "the client hangs"
        error = outcome.get("error")
        # The proxy tells the client, in ClickHouse's words, that its query's connection went away.
        assert isinstance(error, driver_errors.ServerException), outcome
        assert error.code == 210, error
        assert "closed the connection before the query's answer ended" in str(error), error
        assert outcome["took"] < 5, outcome
        client.disconnect()
        # The next connection lands on a live node.
        assert who_native(proxy) in {"ch2", "ch3"}
    finally:
        ch_cluster.restart(1)
    wait_for(lambda: "ch1 up" in health(proxy), 5, "ch1 back up")


def test_http_sessions_stay_on_their_node_and_say_so_when_it_is_gone(ch_cluster, cluster_proxy):
    proxy = cluster_proxy("round_robin")
    session = {"session_id": "cluster-test-session"}
    nodes = {who_http(proxy, **session) for _ in range(6)}
    assert len(nodes) == 1, nodes
    (home,) = nodes
    # The session's state is there on every request: it never moved.
    assert http_request(proxy, "CREATE TEMPORARY TABLE seen (x UInt8)", **session).status == 200
    for _ in range(4):
        answer = http_request(proxy, "SELECT count() FROM seen", **session)
        assert answer.status == 200 and answer.text.strip() == "0", answer.text
    node = int(home[-1])
    ch_cluster.kill(node)
    try:
        answer = http_request(proxy, "SELECT 1", **session)
        assert answer.status == 502, answer.text
        assert answer.headers["x-clickhouse-exception-code"] == "210"
        assert f"ClickHouse node {home}, which holds this session_id's session, is down" in answer.text, answer.text
        # Requests without the session go on as before.
        assert who_http(proxy) != home
    finally:
        ch_cluster.restart(node)
    wait_for(lambda: f"{home} up" in health(proxy), 5, f"{home} back up")


def test_sixty_seconds_of_short_selects_from_16_clients_survive_a_node_kill(ch_cluster, cluster_proxy):
    proxy = cluster_proxy("least_connections")
    stop = threading.Event()
    kill_at = {}
    lock = threading.Lock()
    after_kill_failures = []
    before_kill_errors = []
    counts = collections.Counter()

    def record(started: float, error: Exception | None, node: str | None) -> None:
        with lock:
            if error is None:
                counts[node] += 1
            elif "t" in kill_at and started > kill_at["t"]:
                after_kill_failures.append(repr(error))
            else:
                before_kill_errors.append(error)

    def native_client():
        while not stop.is_set():
            started = time.monotonic()
            try:
                record(started, None, who_native(proxy))
            except Exception as error:  # noqa: BLE001
                record(started, error, None)

    def http_client():
        conn = http.client.HTTPConnection(HOST, proxy.http_port, timeout=10)
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = http_request(proxy, WHO, conn)
                if answer.status != 200:
                    raise RuntimeError(f"HTTP {answer.status}: {answer.text.strip()}")
                record(started, None, answer.text.strip())
            except Exception as error:  # noqa: BLE001
                record(started, error, None)
                conn.close()
                conn = http.client.HTTPConnection(HOST, proxy.http_port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=native_client) for _ in range(8)]
    threads += [threading.Thread(target=http_client) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(20)
        ch_cluster.kill(3)
        kill_at["t"] = time.monotonic()
        time.sleep(20)
        ch_cluster.restart(3)
        time.sleep(20)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if "t" in kill_at:
            try:
                ch_cluster.restart(3)
            except RuntimeError:
                pass  # already running
    assert not [t for t in threads if t.is_alive()], "a client hangs"
    assert not after_kill_failures, after_kill_failures[:5]
    # What failed had started before the kill returned (on ch3 when it died), and failed as a dying ClickHouse
    # fails its clients: an exception from the proxy (code 210), a 502, or a connection closed between packets
    # (the driver's EOFError, what it reports when ClickHouse itself dies).
    for error in before_kill_errors:
        shaped = (driver_errors.Error, EOFError, RuntimeError, OSError, http.client.HTTPException)
        assert isinstance(error, shaped), repr(error)
    assert len(before_kill_errors) <= 16, before_kill_errors
    assert min(counts[n] for n in ("ch1", "ch2", "ch3")) > 0, counts
    assert sum(counts.values()) > 1000, counts
    assert proxy.alive()


def test_the_read_endpoint_refuses_writes_and_the_write_endpoint_writes(ch_cluster, cluster_proxy):
    """ch1 writes, ch2 and ch3 are read replicas: the read endpoints never reach ch1 and refuse every write with
    code 164 before anything reaches ClickHouse; the write endpoint's inserts land and replicate."""
    from support.servers import free_port

    ports = {name: free_port() for name in ("nr", "hr", "nw", "hw")}
    proxy = cluster_proxy(
        "round_robin",
        roles={1: "write", 2: "read", 3: "read"},
        native_read_listen=f"{HOST}:{ports['nr']}",
        http_read_listen=f"{HOST}:{ports['hr']}",
        native_write_listen=f"{HOST}:{ports['nw']}",
        http_write_listen=f"{HOST}:{ports['hw']}",
    )

    class At:
        def __init__(self, native_port, http_port):
            self.native_port, self.http_port = native_port, http_port

    read, write = At(ports["nr"], ports["hr"]), At(ports["nw"], ports["hw"])
    ch_cluster.query(1, "CREATE DATABASE IF NOT EXISTS endpoints ON CLUSTER aurora")
    ch_cluster.query(
        1,
        "CREATE TABLE IF NOT EXISTS endpoints.t ON CLUSTER aurora (x UInt64) "
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/endpoints/t', '{replica}') ORDER BY x",
    )
    assert {who_native(read) for _ in range(6)} == {"ch2", "ch3"}
    assert {who_http(read) for _ in range(6)} == {"ch2", "ch3"}
    assert {who_native(write) for _ in range(3)} | {who_http(write) for _ in range(3)} == {"ch1"}
    # The plain endpoints still reach every node.
    assert {who_native(proxy) for _ in range(6)} == {"ch1", "ch2", "ch3"}

    writes = [
        "INSERT INTO endpoints.t VALUES (1)",
        "ALTER TABLE endpoints.t DELETE WHERE 1",
        "DROP TABLE endpoints.t",
        "  /* a comment first */ TRUNCATE TABLE endpoints.t",
        "CREATE TABLE endpoints.u (x UInt8) ENGINE = Memory",
    ]
    client = Client(HOST, port=read.native_port)
    for sql in writes:
        with pytest.raises(driver_errors.ServerException) as refused:
            client.execute(sql)
        assert refused.value.code == 164, (sql, refused.value)
        assert "Cannot execute query in readonly mode" in str(refused.value)
    # The connection stays usable after a refusal.
    assert client.execute("SELECT 1") == [(1,)]
    client.disconnect()
    for sql in writes:
        answer = http_request(read, sql)
        assert answer.status == 403, (sql, answer.text)
        assert answer.headers["x-clickhouse-exception-code"] == "164", answer.text
    # INSERT with its data in the body, the statement in the URL, as clickhouse-connect and curl send it.
    answer = http_request(read, "2\n", query="INSERT INTO endpoints.t FORMAT TSV")
    assert answer.status == 403, answer.text
    # A compressed statement the proxy cannot read is not let through either.
    import gzip

    zipped = gzip.compress(b"INSERT INTO endpoints.t VALUES (3)")
    answer = http_request(read, zipped, headers={"Content-Encoding": "gzip"})
    assert answer.status == 403, answer.text
    assert http_request(read, gzip.compress(b"SELECT 1"), headers={"Content-Encoding": "gzip"}, query="").status == 403
    # Nothing changed anywhere.
    for node in (1, 2, 3):
        assert ch_cluster.query(node, "SELECT count() FROM endpoints.t").strip() == "0"
        assert "u" not in ch_cluster.query(node, "SHOW TABLES FROM endpoints").split()

    Client(HOST, port=write.native_port).execute("INSERT INTO endpoints.t VALUES", [(7,), (8,)])
    assert http_request(write, "9\n", query="INSERT INTO endpoints.t FORMAT TSV").status == 200
    wait_for(
        lambda: all(ch_cluster.query(n, "SELECT count() FROM endpoints.t").strip() == "3" for n in (1, 2, 3)),
        10,
        "the writes replicated to every node",
    )
    # And the read endpoint reads them from a replica.
    assert Client(HOST, port=read.native_port).execute("SELECT sum(x) FROM endpoints.t") == [(24,)]
    ch_cluster.query(1, "DROP DATABASE endpoints ON CLUSTER aurora")


def test_ask_through_the_read_endpoint_reads_replicas_and_survives_one_going_away(
    ch_cluster, cluster_proxy, scripted_llm
):
    """The catalog, the sampled values and the generated query come from the read replicas (ch2, then ch3);
    with ch2 killed the same ASK is answered from ch3, on both protocols."""
    from support.llm import sql_answer
    from support.servers import free_port

    ch_cluster.query(1, "CREATE DATABASE IF NOT EXISTS asked ON CLUSTER aurora")
    ch_cluster.query(
        1,
        "CREATE TABLE IF NOT EXISTS asked.orders ON CLUSTER aurora (id UInt64, country String) "
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/asked/orders', '{replica}') ORDER BY id",
    )
    ch_cluster.query(1, "INSERT INTO asked.orders VALUES (1, 'DE'), (2, 'FR'), (3, 'DE')")
    wait_for(
        lambda: all(ch_cluster.query(n, "SELECT count() FROM asked.orders").strip() == "3" for n in (2, 3)),
        10,
        "the rows replicated",
    )
    scripted_llm.script(
        [{"match": "orders from DE", "responses": [sql_answer("SELECT count() FROM asked.orders WHERE country = 'DE'")]}]
    )
    ports = {"nr": free_port(), "hr": free_port()}
    cluster_proxy(
        "first_healthy",
        roles={1: "write", 2: "read", 3: "read"},
        native_read_listen=f"{HOST}:{ports['nr']}",
        http_read_listen=f"{HOST}:{ports['hr']}",
        llm_base_url=scripted_llm.base_url,
        llm_model="scripted",
        llm_timeout="5s",
        ask_semantic_cache_threshold=0,
        catalog_ttl="1s",
    )

    def ask_both(round: int):
        client = Client(HOST, port=ports["nr"], database="asked")
        try:
            native = client.execute(f"ASK 'how many orders from DE? ({round})'")
        finally:
            client.disconnect()
        conn = http.client.HTTPConnection(HOST, ports["hr"], timeout=30)
        try:
            conn.request("POST", "/?database=asked", body=f"ASK 'how many orders from DE, over HTTP? ({round})'".encode())
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        assert response.status == 200, text
        return native, text.strip()

    assert ask_both(1) == ([(2,)], "2")
    ch_cluster.kill(2)
    try:
        # New questions, after the catalog's TTL: the catalog is read again, from ch3.
        time.sleep(1.5)
        assert ask_both(2) == ([(2,)], "2")
    finally:
        ch_cluster.restart(2)
    ch_cluster.query(1, "DROP DATABASE asked ON CLUSTER aurora")


def test_kill_query_over_http_reaches_the_node_running_the_query(cluster_proxy):
    """Three long queries land on the three nodes (round robin); each one's KILL, sent through the proxy, finds
    it (a KILL that reached another node would answer with no row: by chance all three would, 1 time in 27)."""
    proxy = cluster_proxy("round_robin")
    outcomes = {}

    def long_query(query_id):
        started = time.monotonic()
        answer = http_request(
            proxy, "SELECT count() FROM system.numbers_mt", query_id=query_id, max_execution_time="60"
        )
        outcomes[query_id] = (answer, time.monotonic() - started)

    ids = [f"cluster-kill-{i}" for i in range(3)]
    runners = [threading.Thread(target=long_query, args=(query_id,)) for query_id in ids]
    for runner in runners:
        runner.start()
        time.sleep(0.2)
    time.sleep(1.0)
    for query_id in ids:
        killed = http_request(proxy, f"KILL QUERY WHERE query_id = '{query_id}' SYNC FORMAT TSV")
        assert killed.status == 200, killed.text
        assert query_id in killed.text, (query_id, killed.text)
    for runner in runners:
        runner.join(timeout=20)
        assert not runner.is_alive()
    for query_id, (answer, took) in outcomes.items():
        assert took < 15, (query_id, took)
        assert answer.status != 200 or "Exception" in answer.text, answer.text


def test_kill_query_over_http_reaches_a_native_clients_query_on_its_node(cluster_proxy):
    """Three native clients (round robin: one per node) run long queries without query ids; the proxy gives each
    one and remembers its node, so a KILL by that id sent through the proxy's HTTP side finds it."""
    proxy = cluster_proxy("round_robin")
    errors = {}

    def long_query(i):
        client = Client("127.0.0.1", port=proxy.native_port, send_receive_timeout=60,
                        settings={"max_execution_time": 60})
        try:
            client.execute(f"SELECT count() FROM system.numbers_mt WHERE NOT ignore('native-kill-{i}')")
        except Exception as e:  # noqa: BLE001 - the error is what is checked
            errors[i] = e
        finally:
            client.disconnect()

    runners = [threading.Thread(target=long_query, args=(i,)) for i in range(3)]
    for runner in runners:
        runner.start()
        time.sleep(0.2)
    time.sleep(1.0)
    killed_ids = set()
    for i in range(3):
        # The id the proxy gave the query, as the node running it shows it (round robin: some request of six
        # reaches that node).
        for _ in range(6):
            found = http_request(proxy, "SELECT query_id FROM system.processes "
                                 f"WHERE query LIKE '%native-kill-{i}%' AND query NOT LIKE '%system.processes%' "
                                 "FORMAT TSV")
            if found.text.strip():
                query_id = found.text.split()[0]
                killed = http_request(proxy, f"KILL QUERY WHERE query_id = '{query_id}' SYNC FORMAT TSV")
                assert killed.status == 200 and query_id in killed.text, (query_id, killed.text)
                killed_ids.add(query_id)
                break
    assert len(killed_ids) == 3, killed_ids
    for runner in runners:
        runner.join(timeout=20)
        assert not runner.is_alive()
    assert sorted(errors) == [0, 1, 2], errors


def test_clickhouse_client_and_clickhouse_connect_are_spread_and_fail_over(ch_cluster, cluster_proxy):
    """The real clients users run: Debian's clickhouse-client (native) and clickhouse-connect (HTTP), each
    connection and request on the next node, and on the others when one is killed."""
    import clickhouse_connect

    from support.cli import clickhouse_client

    proxy = cluster_proxy("round_robin")

    def cli_who() -> str:
        result = clickhouse_client(proxy.endpoint, query=WHO)
        assert result.returncode == 0, result.stderr
        return result.stdout.decode().strip()

    # clickhouse-connect opens a ClickHouse session by default: its requests stay on one node.
    in_session = clickhouse_connect.get_client(host=HOST, port=proxy.http_port)
    try:
        assert len({in_session.command(WHO) for _ in range(6)}) == 1
    finally:
        in_session.close()
    # Without one, each request (after the client's start-up requests) goes to the next node.
    from clickhouse_connect import common

    common.set_setting("autogenerate_session_id", False)
    try:
        http_client = clickhouse_connect.get_client(host=HOST, port=proxy.http_port)
    finally:
        common.set_setting("autogenerate_session_id", True)
    try:
        assert {cli_who() for _ in range(3)} == {"ch1", "ch2", "ch3"}
        assert {http_client.command(WHO) for _ in range(6)} == {"ch1", "ch2", "ch3"}
        ch_cluster.kill(1)
        try:
            assert {cli_who() for _ in range(4)} == {"ch2", "ch3"}
            assert {http_client.command(WHO) for _ in range(4)} == {"ch2", "ch3"}
        finally:
            ch_cluster.restart(1)
    finally:
        http_client.close()
    wait_for(lambda: "ch1 up" in health(proxy), 5, "ch1 back up")
