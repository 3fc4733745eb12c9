"""Learning from answers: a user marks an ASK answer right or wrong by repeating the ASK with
`SETTINGS aurora_feedback = 'good' | 'bad'` (or the console's JSON API), the mark is stored in ClickHouse, good
pairs become examples for later questions on that database — never for users who cannot read their tables — and
bad ones leave the caches and are never shown again. Real aurora-proxy, real ClickHouse, real clients; the model
is the project's scripted endpoint, whose recorded requests show what the prompt held.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from clickhouse_driver import Client, errors

from support.driver import connect
from support.servers import DIRECT_MODE, scripted_ask_proxy

pytestmark = pytest.mark.proxy_only

DB = "ask_feedback"
MARKS_DB = "ask_feedback_marks"
MARKS = f"{MARKS_DB}.marks"


@pytest.fixture(scope="module")
def orders(direct):
    admin = Client(direct.host, port=direct.native_port)
    for db in (DB, MARKS_DB):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
    admin.execute(f"CREATE DATABASE {DB}")
    admin.execute(
        f"""CREATE TABLE {DB}.orders (
            order_id UInt32 COMMENT 'Order number', customer String COMMENT 'Customer id, e.g. acme',
            status String COMMENT 'placed, shipped or cancelled', amount Float64 COMMENT 'Order value in EUR'
        ) ENGINE = MergeTree ORDER BY order_id"""
    )
    admin.execute(
        f"""INSERT INTO {DB}.orders SELECT number + 1, ['acme', 'globex', 'initech'][number % 3 + 1],
            ['placed', 'shipped', 'cancelled'][number % 3 + 1], 10 + number FROM numbers(30)"""
    )
    yield admin
    for db in (DB, MARKS_DB):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
    admin.disconnect()


@pytest.fixture(scope="module")
def proxy(clickhouse, scripted_llm_server, tmp_path_factory, orders):
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    # The marks go to a table of their own that Aurora creates (database included) at the first mark.
    yield from scripted_ask_proxy(
        clickhouse, scripted_llm_server, tmp_path_factory.mktemp("ask-feedback-proxy"), "--ask-feedback-table", MARKS
    )


def plain(sql: str) -> dict:
    return {"content": {"sql": sql, "explanation": ""}}


def compact(value) -> str:
    """JSON as the prompt writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"))


def user_message(body: dict) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def stored(direct) -> list:
    return connect(direct).execute(f"SELECT database, user, question, sql, toString(verdict) FROM {MARKS} ORDER BY at")


def http_ask(endpoint, statement: str, session: str) -> tuple[int, str]:
    query = urllib.parse.urlencode({"query": statement, "database": DB, "session_id": session})
    try:
        with urllib.request.urlopen(f"{endpoint.http_url}/?{query}", timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(endpoint, name: str) -> float:
    with urllib.request.urlopen(f"http://{endpoint.host}:{endpoint.metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_a_good_mark_is_stored_and_teaches_later_questions(proxy, direct, scripted_llm):
    sql = f"SELECT customer, count() AS orders FROM {DB}.orders GROUP BY customer ORDER BY customer"
    scripted_llm.script(
        [
            {"match": "orders per customer", "responses": [plain(sql)]},
            {"match": "", "responses": [plain(f"SELECT count() AS n FROM {DB}.orders")]},
        ]
    )
    client = connect(proxy, database=DB)
    assert client.execute("ASK 'orders per customer'") == [("acme", 10), ("globex", 10), ("initech", 10)]
    good_before = metric(proxy, 'aurora_ask_feedback_total{verdict="good"}')

    rows, columns = client.execute(
        "ASK 'Orders per customer?' SETTINGS aurora_feedback = 'good'", with_column_types=True
    )
    assert [c[0] for c in columns] == ["feedback", "question", "sql"]
    assert rows == [("good", "orders per customer", sql)]
    assert len(scripted_llm.chat_requests()) == 1  # marking asks the model nothing
    assert stored(direct) == [(DB, "default", "orders per customer", sql, "good")]
    assert metric(proxy, 'aurora_ask_feedback_total{verdict="good"}') == good_before + 1

    # Another connection, another question: the marked pair is among the prompt's examples.
    connect(proxy, database=DB).execute("ASK 'how many orders does each customer have'")
    prompt = user_message(scripted_llm.chat_requests()[-1])
    assert "Examples:" in prompt
    assert "Q: orders per customer\nA: " + compact({"sql": sql}) in prompt


def test_a_bad_mark_leaves_the_cache_is_never_shown_and_the_model_hears_of_it(proxy, direct, scripted_llm):
    wrong = f"SELECT status, sum(amount) AS revenue FROM {DB}.orders GROUP BY status ORDER BY status"
    right = f"SELECT customer, sum(amount) AS revenue FROM {DB}.orders GROUP BY customer ORDER BY customer"
    scripted_llm.script([{"match": "revenue by customer", "responses": [plain(wrong), plain(right)]}])
    status, body = http_ask(proxy, "ASK 'revenue by customer'", "fb-1")
    assert status == 200 and body.splitlines()[0].startswith("cancelled"), body

    status, body = http_ask(proxy, "ASK 'revenue by customer' SETTINGS aurora_feedback = 'bad'", "fb-1")
    assert status == 200 and body.startswith("bad\trevenue by customer\t"), body
    assert (DB, "default", "revenue by customer", wrong, "bad") in stored(direct)

    # Asked again (another session): not from the cache; the model is told which answer was wrong.
    status, body = http_ask(proxy, "ASK 'revenue by customer'", "fb-2")
    assert status == 200 and body.splitlines()[0].startswith("acme"), body
    requests = scripted_llm.chat_requests()
    assert len(requests) == 2
    prompt = user_message(requests[1])
    assert "marked these answers to the question as wrong" in prompt and wrong in prompt
    assert http_ask(proxy, "ASK 'revenue by customer' SETTINGS aurora_feedback = 'good'", "fb-2")[0] == 200

    # A pair marked bad is never an example, even after somebody else marks the same pair good.
    scripted_llm.script([{"match": "", "responses": [plain(wrong)]}])
    assert http_ask(proxy, "ASK 'revenue by customer' SETTINGS aurora_no_cache = 1", "fb-3")[0] == 200
    assert http_ask(proxy, "ASK 'revenue by customer' SETTINGS aurora_feedback = 'good'", "fb-3")[0] == 200
    assert (DB, "default", "revenue by customer", wrong, "good") in stored(direct)
    scripted_llm.script([{"match": "", "responses": [plain(right)]}])
    scripted_llm.clear_requests()
    connect(proxy, database=DB).execute("ASK 'total revenue of each customer'")
    prompt = user_message(scripted_llm.chat_requests()[-1])
    assert "Q: revenue by customer\nA: " + compact({"sql": right}) in prompt
    assert wrong not in prompt


def test_marking_needs_an_earlier_answer_and_a_verdict(proxy, scripted_llm):
    client = connect(proxy, database=DB)
    with pytest.raises(errors.ServerException) as info:
        client.execute("ASK 'never asked before' SETTINGS aurora_feedback = 'good'")
    assert info.value.code == 36 and "no earlier answer" in info.value.message
    with pytest.raises(errors.ServerException) as info:
        client.execute("ASK 'orders per customer' SETTINGS aurora_feedback = 'great'")
    assert info.value.code == 36 and "'good' or 'bad'" in info.value.message
    assert scripted_llm.chat_requests() == []


def test_a_marked_pair_is_never_shown_to_a_user_who_cannot_read_its_tables(proxy, direct, scripted_llm):
    """`analyst` may read `analytics` only. A pair asked in analytics that also reads ask_feedback.orders is an
    example for `default` (who can read both) and never for `analyst`."""
    admin = connect(direct)
    admin.execute("CREATE DATABASE IF NOT EXISTS analytics")
    admin.execute("DROP TABLE IF EXISTS analytics.fb_customers")
    admin.execute("CREATE TABLE analytics.fb_customers (customer String, country String) ENGINE = Memory")
    admin.execute("INSERT INTO analytics.fb_customers VALUES", [("acme", "US"), ("globex", "DE")])
    cross = (
        f"SELECT c.country, count() AS orders FROM {DB}.orders AS o "
        "INNER JOIN analytics.fb_customers AS c ON o.customer = c.customer GROUP BY c.country ORDER BY c.country"
    )
    own = "SELECT country, count() AS customers FROM analytics.fb_customers GROUP BY country ORDER BY country"
    try:
        scripted_llm.script(
            [
                {"match": "orders by country", "responses": [plain(cross)]},
                {"match": "customers by country", "responses": [plain(own)]},
                {"match": "", "responses": [plain(own)]},
            ]
        )
        default = connect(proxy, database="analytics")
        assert default.execute("ASK 'orders by country' SETTINGS aurora_refresh_catalog = 1") == [("DE", 10), ("US", 10)]
        default.execute("ASK 'orders by country' SETTINGS aurora_feedback = 'good'")
        analyst = connect(proxy, user="analyst", password="analyst-secret", database="analytics")
        assert analyst.execute("ASK 'customers by country'") == [("DE", 1), ("US", 1)]
        analyst.execute("ASK 'customers by country' SETTINGS aurora_feedback = 'good'")

        scripted_llm.clear_requests()
        analyst.execute("ASK 'number of orders and customers by country'")
        seen_by_analyst = user_message(scripted_llm.chat_requests()[-1])
        assert "Q: customers by country" in seen_by_analyst
        assert "orders by country\nA:" not in seen_by_analyst and DB not in seen_by_analyst

        connect(proxy, database="analytics").execute("ASK 'number of orders and customers by country'")
        seen_by_default = user_message(scripted_llm.chat_requests()[-1])
        assert "Q: orders by country" in seen_by_default and "Q: customers by country" in seen_by_default
    finally:
        admin.execute("DROP TABLE IF EXISTS analytics.fb_customers")


def test_the_console_api_marks_an_answer_of_its_session(proxy, direct, scripted_llm):
    sql = f"SELECT max(amount) AS largest FROM {DB}.orders"
    scripted_llm.script([{"match": "largest order", "responses": [plain(sql)]}])

    def post(body: dict) -> dict:
        request = urllib.request.Request(
            f"{proxy.http_url}/ask?database={DB}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    answer = post({"question": "largest order", "session": "page-1"})
    assert answer["rows"] == [[39]] and answer["feedback"] is None
    elsewhere = post({"question": "largest order", "session": "page-2", "feedback": "good"})
    marked = post({"question": "largest order", "session": "page-1", "feedback": "good"})
    assert marked["feedback"] == "good" and marked["rows"] == [["good", "largest order", sql]], marked
    assert (DB, "default", "largest order", sql, "good") in stored(direct)
    # page-2 had no answer of its own, but the exact cache held page-1's: that one was marked.
    assert elsewhere["feedback"] == "good", elsewhere
    bad = post({"question": "largest order", "feedback": 1})
    assert bad["error"]["code"] == 36 and "feedback" in bad["error"]["message"]


def test_the_console_api_bounds_its_session_and_verdict(proxy, scripted_llm):
    """Hostile `/ask` bodies: an over-long or non-string session and a non-string verdict are refused with 36
    before anything is asked of the model."""

    def post(body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{proxy.http_url}/ask?database={DB}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    for body in (
        {"question": "largest order", "session": "s" * 129},
        {"question": "largest order", "session": ""},
        {"question": "largest order", "session": ["page-1"]},
        {"question": "largest order", "feedback": {"verdict": "good"}},
    ):
        status, answer = post(body)
        assert status == 400 and answer["error"]["code"] == 36, (body, answer)
    # 128 bytes pass the bound: the refusal is then that nothing was answered in that session.
    status, answer = post({"question": "a question nobody asked", "session": "s" * 128, "feedback": "good"})
    # (code 36 from the engine is HTTP 500, as 18.16 maps it; the body checks above are refused as requests, 400)
    assert (status, answer["error"]["code"]) == (500, 36) and "no earlier answer" in answer["error"]["message"], answer
    assert scripted_llm.chat_requests() == []
