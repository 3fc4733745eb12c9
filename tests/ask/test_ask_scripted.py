"""ASK end to end with a scripted model: real aurora-proxy, real ClickHouse, real clients, and the project's own
OpenAI-compatible endpoint (tests/support/scripted_llm.py) called by the proxy's real async-openai client.

What the model answers is fixed per test; what is checked is what a user sees: rows, errors, and that nothing in
ClickHouse changed when a model proposed something it must not run.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from clickhouse_driver import Client, errors

from support.cli import clickhouse_client
from support.driver import connect
from support.servers import DIRECT_MODE, scripted_ask_proxy

pytestmark = pytest.mark.proxy_only

DEMO = "ask_demo"
SECRET = "ask_secret"


@pytest.fixture(scope="module")
def demo_data(direct):
    """ask_demo.events (the event envelope shape) and ask_secret.salaries, created on ClickHouse directly."""
    admin = Client(direct.host, port=direct.native_port)
    for db in (DEMO, SECRET):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
        admin.execute(f"CREATE DATABASE {db}")
    admin.execute(
        f"""CREATE TABLE {DEMO}.events (
            event_id UUID, timestamp DateTime, event_type String, tenant_id String, user_id String,
            revenue Float64 COMMENT 'money from purchases', payload String, schema_version UInt16
        ) ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (tenant_id, event_type, timestamp)"""
    )
    admin.execute(
        f"""INSERT INTO {DEMO}.events SELECT
            generateUUIDv4(), toDateTime('2026-10-01 00:00:00') + number * 3600,
            ['page_view', 'signup', 'purchase'][number % 3 + 1], ['acme', 'globex'][number % 2 + 1],
            concat('u', toString(number % 17)), if(number % 3 = 2, 10 + number % 7, 0), '{{}}', 1
        FROM numbers(300)"""
    )
    admin.execute(f"CREATE TABLE {SECRET}.salaries (name String, salary UInt32) ENGINE = Memory")
    admin.execute(f"INSERT INTO {SECRET}.salaries VALUES", [("ann", 100), ("bob", 200)])
    yield admin
    for db in (DEMO, SECRET):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
    admin.disconnect()


@pytest.fixture(scope="module")
def ask_proxy(clickhouse, scripted_llm_server, tmp_path_factory, demo_data):
    """An aurora-proxy whose ASK goes to the scripted model."""
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    yield from scripted_ask_proxy(clickhouse, scripted_llm_server, tmp_path_factory.mktemp("ask-proxy"))


def answer(sql: str, params: dict | None = None, explanation: str = "") -> dict:
    return {"content": {"sql": sql, "params": params or {}, "explanation": explanation}}


def http(endpoint, body: bytes | str, path: str = "/", params: str = "", headers: dict | None = None):
    """(status, headers, body text) of one request."""
    data = body.encode() if isinstance(body, str) else body
    url = f"{endpoint.http_url}{path}" + (f"?{params}" if params else "")
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def event_count(demo_data) -> int:
    return demo_data.execute(f"SELECT count() FROM {DEMO}.events")[0][0]


REVENUE_SQL = (
    f"SELECT tenant_id, sum(revenue) AS revenue FROM {DEMO}.events "
    "WHERE event_type = {kind:String} GROUP BY tenant_id ORDER BY tenant_id"
)
REVENUE_DIRECT = (
    f"SELECT tenant_id, sum(revenue) AS revenue FROM {DEMO}.events "
    "WHERE event_type = 'purchase' GROUP BY tenant_id ORDER BY tenant_id"
)


def test_native_driver_ask_returns_the_rows(ask_proxy, direct, scripted_llm, demo_data):
    scripted_llm.script([{"match": "revenue per tenant", "responses": [answer(REVENUE_SQL, {"kind": "purchase"})]}])
    rows, columns = connect(ask_proxy).execute("ASK 'revenue per tenant?'", with_column_types=True)
    expected = connect(direct).execute(REVENUE_DIRECT, with_column_types=True)
    assert (rows, columns) == expected
    assert len(rows) == 2 and rows[0][1] > 0
    # The model saw the question and the schema of the table, with the column comment.
    prompt = json.dumps(scripted_llm.requests()[0]["messages"])
    assert "revenue per tenant" in prompt and f"{DEMO}.events" in prompt and "money from purchases" in prompt


def test_clickhouse_client_uses_the_table_function_spelling(ask_proxy, direct, scripted_llm):
    sql = f"SELECT event_type, count() AS events FROM {DEMO}.events GROUP BY event_type ORDER BY event_type"
    scripted_llm.script([{"match": "events per type", "responses": [answer(sql)]}])
    via_ask = clickhouse_client(ask_proxy, query="SELECT * FROM ask('events per type')")
    reference = clickhouse_client(direct, query=sql)
    assert via_ask.returncode == 0, via_ask.stderr
    assert via_ask.stdout == reference.stdout == b"page_view\t100\npurchase\t100\nsignup\t100\n"

    explained = clickhouse_client(ask_proxy, query="SELECT * FROM explain_ask('events per type') FORMAT Vertical")
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout.decode()
    for column in ("sql:", "params:", "tables:", "explanation:", "cached:"):
        assert column in text, text
    assert f"['{DEMO}.events']" in text and "cached:      1" in text  # the same question: from the exact cache
    assert len(scripted_llm.requests()) == 1


def test_http_ask_answers_in_the_clients_format(ask_proxy, direct, scripted_llm):
    scripted_llm.script([{"match": "http revenue", "responses": [answer(REVENUE_SQL, {"kind": "purchase"})]}])
    status, headers, body = http(ask_proxy, "ASK 'http revenue' FORMAT CSVWithNames")
    _, _, reference = http(direct, REVENUE_DIRECT + " FORMAT CSVWithNames")
    assert status == 200, body
    assert body == reference and body.startswith('"tenant_id","revenue"\n"acme",')
    # The ASK in the query parameter, the format from default_format (as Grafana's plugin sends it).
    status, _, body = http(ask_proxy, b"", params="query=ASK%20%27http%20revenue%27&default_format=JSONEachRow")
    assert status == 200, body
    assert [json.loads(line)["tenant_id"] for line in body.splitlines()] == ["acme", "globex"]


def test_post_ask_returns_json_for_web_tools(ask_proxy, scripted_llm):
    scripted_llm.script([{"match": "json revenue", "responses": [answer(REVENUE_SQL, {"kind": "purchase"}, "Revenue.")]}])
    status, headers, body = http(ask_proxy, json.dumps({"question": "json revenue"}), path="/ask")
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["sql"] == REVENUE_SQL and doc["params"] == {"kind": "purchase"} and doc["explanation"] == "Revenue."
    assert doc["columns"] == [{"name": "tenant_id", "type": "String"}, {"name": "revenue", "type": "Float64"}]
    assert [row[0] for row in doc["rows"]] == ["acme", "globex"]
    assert doc["tables"] == [f"{DEMO}.events"] and doc["cached"] is False
    # 18.16 has no query parameters: the value went in as a typed, escaped literal.
    assert "'purchase'" in doc["executed_sql"] and "{kind:String}" not in doc["executed_sql"]

    status, _, body = http(ask_proxy, "not json", path="/ask")
    assert status == 400 and "not JSON" in json.loads(body)["error"]["message"]
    status, _, body = http(ask_proxy, json.dumps({"question": " "}), path="/ask")
    assert status == 400 and "question" in json.loads(body)["error"]["message"]


def test_explain_ask_describes_without_running(ask_proxy, scripted_llm, demo_data):
    # A query that would fail if it ran (division of a string) still explains: EXPLAIN does not execute it.
    sql = f"SELECT intDiv(tenant_id, 0) AS x FROM {DEMO}.events WHERE user_id = {{who:String}}"
    scripted_llm.script([{"match": "explain me", "responses": [answer(sql, {"who": "u1"}, "Nonsense.")]}])
    rows, columns = connect(ask_proxy).execute("EXPLAIN ASK 'explain me'", with_column_types=True)
    assert [c[0] for c in columns][:5] == ["sql", "params", "tables", "explanation", "cached"]
    assert rows[0][:5] == (sql, '{"who":"u1"}', [f"{DEMO}.events"], "Nonsense.", 0)


def test_a_smuggled_quote_stays_inside_its_value(ask_proxy, scripted_llm, demo_data):
    sql = f"SELECT count() AS n FROM {DEMO}.events WHERE tenant_id = {{tenant:String}}"
    value = "acme' OR '1'='1"
    scripted_llm.script([{"match": "smuggle", "responses": [answer(sql, {"tenant": value})]}])
    before = event_count(demo_data)
    assert connect(ask_proxy).execute("ASK 'smuggle a literal'") == [(0,)]
    assert event_count(demo_data) == before


def test_a_value_that_does_not_fit_its_type_is_refused(ask_proxy, scripted_llm):
    sql = f"SELECT * FROM {DEMO}.events LIMIT {{n:UInt32}}"
    scripted_llm.script([{"match": "wrong type", "responses": [answer(sql, {"n": "ten"})]}])
    with pytest.raises(errors.ServerException) as info:
        connect(ask_proxy).execute("ASK 'wrong type'")
    assert info.value.code == 36
    assert "parameter n is declared UInt32" in info.value.message and "Generated SQL:" in info.value.message


def test_malformed_output_is_retried_once(ask_proxy, scripted_llm):
    good = answer(f"SELECT count() AS n FROM {DEMO}.events")
    scripted_llm.script([{"match": "", "responses": ["Sure! SELECT count() FROM events", good]}])
    assert connect(ask_proxy).execute("ASK 'malformed once'") == [(300,)]
    requests = scripted_llm.requests()
    assert len(requests) == 2
    assert "not usable" in requests[1]["messages"][-1]["content"]
    assert requests[1]["messages"][-2] == {"role": "assistant", "content": "Sure! SELECT count() FROM events"}


def test_malformed_output_twice_is_an_error(ask_proxy, scripted_llm):
    scripted_llm.script([{"match": "", "responses": ['{"sql": 42}', "[]"]}])
    with pytest.raises(errors.ServerException) as info:
        connect(ask_proxy).execute("ASK 'malformed twice'")
    assert info.value.code == 117
    assert "not usable twice" in info.value.message
    assert len(scripted_llm.requests()) == 2


DANGEROUS = [
    (f"DROP TABLE {DEMO}.events", "only SELECT"),
    (f"INSERT INTO {DEMO}.events (tenant_id) VALUES ('x')", "only SELECT"),
    (f"ALTER TABLE {DEMO}.events DELETE WHERE 1", "does not parse"),
    ("SELECT name FROM system.tables", "system table"),
    ("SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')", "url()"),
    (f"SELECT 1; DROP TABLE {DEMO}.events", "exactly one"),
    (f"SELECT * FROM {DEMO}.events INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
    (f"SELECT count() FROM {DEMO}.events SETTINGS readonly = 0", "SETTINGS"),
    (f"SELECT * FROM {SECRET}.nowhere", "not in the catalog"),
]


@pytest.mark.parametrize("sql,why", DANGEROUS, ids=[d[1] + str(i) for i, d in enumerate(DANGEROUS)])
def test_what_a_model_must_not_run_is_rejected(ask_proxy, scripted_llm, demo_data, sql, why):
    scripted_llm.script([{"match": "dangerous", "responses": [answer(sql)]}])
    before = event_count(demo_data)
    with pytest.raises(errors.ServerException) as info:
        connect(ask_proxy).execute("ASK 'something dangerous'")
    assert info.value.code in (497, 62), info.value.message
    assert why in info.value.message, info.value.message
    assert "Generated SQL:" in info.value.message
    assert event_count(demo_data) == before
    # Over HTTP too, as a ClickHouse-shaped error.
    status, headers, body = http(ask_proxy, "ASK 'something dangerous' FORMAT JSON")
    assert status in (400, 403, 500) and body.startswith(f"Code: {info.value.code}, e.displayText() = DB::Exception: Aurora:"), body
    assert event_count(demo_data) == before


def test_self_correction_after_a_clickhouse_error(ask_proxy, scripted_llm):
    bad = answer(f"SELECT tenant, count() AS n FROM {DEMO}.events GROUP BY tenant")
    good = answer(f"SELECT tenant_id, count() AS n FROM {DEMO}.events GROUP BY tenant_id ORDER BY tenant_id")
    scripted_llm.script([{"match": "", "responses": [bad, good]}])
    assert connect(ask_proxy).execute("ASK 'events per tenant please'") == [("acme", 150), ("globex", 150)]
    requests = scripted_llm.requests()
    assert len(requests) == 2
    feedback = requests[1]["messages"][-1]["content"]
    assert "ClickHouse rejected" in feedback and "tenant" in feedback


def test_a_second_rejection_names_the_generated_sql(ask_proxy, scripted_llm):
    bad = answer(f"SELECT tenant, count() AS n FROM {DEMO}.events GROUP BY tenant")
    worse = answer(f"SELECT tenantx FROM {DEMO}.events")
    scripted_llm.script([{"match": "", "responses": [bad, worse]}])
    with pytest.raises(errors.ServerException) as info:
        connect(ask_proxy).execute("ASK 'twice wrong'")
    assert "also after one correction" in info.value.message
    assert f"Generated SQL: SELECT tenantx FROM {DEMO}.events" in info.value.message
    status, _, body = http(ask_proxy, "ASK 'twice wrong'")  # not cached: failures are forgotten
    assert status != 200 and "also after one correction" in body


def test_a_restricted_user_never_sees_other_databases(ask_proxy, scripted_llm, demo_data):
    """`analyst` (readonly, allow_databases: analytics) asks: the catalog, read with its own credentials, holds
    only analytics; a model that names another database's table is refused, and the prompt never showed it."""
    demo_data.execute("CREATE DATABASE IF NOT EXISTS analytics")
    demo_data.execute("DROP TABLE IF EXISTS analytics.ask_visible")
    demo_data.execute("CREATE TABLE analytics.ask_visible (k String, v UInt32) ENGINE = Memory")
    demo_data.execute("INSERT INTO analytics.ask_visible VALUES", [("a", 1), ("b", 2)])
    try:
        scripted_llm.script(
            [
                {"match": "salaries", "responses": [answer(f"SELECT * FROM {SECRET}.salaries")]},
                {"match": "visible", "responses": [answer("SELECT k, v FROM analytics.ask_visible ORDER BY k")]},
            ]
        )
        analyst = connect(ask_proxy, user="analyst", password="analyst-secret")
        with pytest.raises(errors.ServerException) as info:
            analyst.execute("ASK 'show me the salaries'")
        assert "not in the catalog" in info.value.message
        prompt = json.dumps(scripted_llm.requests()[0]["messages"])
        assert "analytics.ask_visible" in prompt
        assert SECRET not in prompt and DEMO not in prompt
        # A readonly user's own profile already sets readonly: the ASK runs without changing it.
        assert analyst.execute("ASK 'what is visible'") == [("a", 1), ("b", 2)]
    finally:
        demo_data.execute("DROP TABLE IF EXISTS analytics.ask_visible")


def test_wrong_password_gets_clickhouses_refusal(ask_proxy, scripted_llm):
    status, _, body = http(ask_proxy, "ASK 'anything'", headers={"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "nope"})
    assert status != 200 and ("password" in body.lower() or "authentication" in body.lower()), body
    assert scripted_llm.requests() == []  # nothing was sent to the model


def test_asks_are_counted(ask_proxy, scripted_llm):
    scripted_llm.script([{"match": "count me", "responses": [answer(f"SELECT 1 AS one FROM {DEMO}.events LIMIT 1")]}])

    def value(name: str) -> float:
        text = urllib.request.urlopen(f"http://{ask_proxy.host}:{ask_proxy.metrics_port}/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{name} not exported")

    ok = value('aurora_ask_total{outcome="ok"}')
    hits = value('aurora_ask_cache_hits_total{cache="exact"}')
    calls = value("aurora_ask_llm_duration_seconds_count")
    client = connect(ask_proxy)
    assert client.execute("ASK 'count me'") == [(1,)]
    assert client.execute("ASK 'Count me?'") == [(1,)]  # the same question, normalised: from the cache
    assert value('aurora_ask_total{outcome="ok"}') == ok + 2
    assert value('aurora_ask_cache_hits_total{cache="exact"}') == hits + 1
    assert value("aurora_ask_llm_duration_seconds_count") == calls + 1
    assert value('aurora_ask_llm_tokens_total{kind="prompt"}') > 0


def test_an_unreachable_or_slow_model_is_a_clear_error(clickhouse, scripted_llm, start_proxy, demo_data):
    upstreams = (f"127.0.0.1:{clickhouse.tcp_port}", f"http://127.0.0.1:{clickhouse.http_port}")
    dead = start_proxy(*upstreams, ("--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m"))
    with pytest.raises(errors.ServerException) as info:
        connect(dead.endpoint).execute("ASK 'anyone there?'")
    assert info.value.code == 210 and "LLM endpoint http://127.0.0.1:9/v1 failed" in info.value.message

    slow = start_proxy(
        *upstreams,
        ("--llm-base-url", scripted_llm.base_url, "--llm-model", "m", "--llm-timeout", "1s"),
    )
    scripted_llm.script([{"match": "slow", "responses": [{"delay_s": 3, **answer("SELECT 1")}]}])
    with pytest.raises(errors.ServerException) as info:
        connect(slow.endpoint).execute("ASK 'slow model'")
    assert info.value.code == 159 and "did not answer within 1s" in info.value.message
    # The session is still usable after a failed ASK.
    client = connect(slow.endpoint)
    with pytest.raises(errors.ServerException):
        client.execute("ASK 'slow model'")
    assert client.execute("SELECT 42") == [(42,)]
