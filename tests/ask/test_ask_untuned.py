"""ASK on a database nobody tuned it for: the model writes plain SQL and Aurora parameterizes it, any placeholder
name ClickHouse takes binds, a refused answer is repaired once, the prompt offers the request's database only (never
Aurora's machinery tables), and follow-up questions carry the previous question. Real aurora-proxy, real ClickHouse,
real clients; the model is the project's scripted endpoint, whose recorded requests show what the prompt held.
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

DB = "ask_untuned"
OTHER = "ask_untuned_other"


@pytest.fixture(scope="module")
def shop(direct):
    """ask_untuned.orders and .customers (column comments only), an ingest stage table beside them, and a table in
    another database."""
    admin = Client(direct.host, port=direct.native_port)
    for db in (DB, OTHER):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
        admin.execute(f"CREATE DATABASE {db}")
    admin.execute(
        f"""CREATE TABLE {DB}.orders (
            order_id UInt32 COMMENT 'Order number', customer String COMMENT 'Customer id, e.g. acme',
            status String COMMENT 'placed, shipped or cancelled', amount Float64 COMMENT 'Order value in EUR',
            placed_at DateTime COMMENT 'When the order was placed (UTC)', day Date COMMENT 'Day of placed_at'
        ) ENGINE = MergeTree ORDER BY order_id"""
    )
    admin.execute(
        f"""INSERT INTO {DB}.orders SELECT number + 1, ['acme', 'globex', 'initech'][number % 3 + 1],
            ['placed', 'shipped', 'cancelled'][number % 3 + 1 - (number % 5 = 0)], 10 + number,
            toDateTime('2026-10-01 00:00:00') + number * 7200, toDate(toDateTime('2026-10-01 00:00:00') + number * 7200)
        FROM numbers(60)"""
    )
    admin.execute(
        f"CREATE TABLE {DB}.customers (customer String COMMENT 'Customer id', country String COMMENT 'ISO country') "
        "ENGINE = MergeTree ORDER BY customer"
    )
    admin.execute(f"INSERT INTO {DB}.customers VALUES", [("acme", "US"), ("globex", "DE"), ("initech", "GB")])
    admin.execute(f"CREATE TABLE {DB}.aurora_stage_orders (customer String, amount Float64) ENGINE = Null")
    admin.execute(f"CREATE TABLE {OTHER}.orders_archive (customer String, amount Float64) ENGINE = Memory")
    yield admin
    for db in (DB, OTHER):
        admin.execute(f"DROP DATABASE IF EXISTS {db}")
    admin.disconnect()


@pytest.fixture(scope="module")
def proxy(clickhouse, scripted_llm_server, tmp_path_factory, shop):
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    yield from scripted_ask_proxy(clickhouse, scripted_llm_server, tmp_path_factory.mktemp("ask-untuned-proxy"))


def plain(sql: str, explanation: str = "") -> dict:
    """An answer as the prompt now asks for it: SQL and an explanation, no parameters."""
    return {"content": {"sql": sql, "explanation": explanation}}


def with_params(sql: str, params: dict) -> dict:
    return {"content": {"sql": sql, "params": params, "explanation": ""}}


def explain(endpoint, question: str, params: str = "") -> dict:
    """EXPLAIN ASK over HTTP, as one JSON object."""
    query = urllib.parse.quote(f"EXPLAIN ASK '{question}' FORMAT JSONEachRow")
    url = f"{endpoint.http_url}/?query={query}&database={DB}" + (f"&{params}" if params else "")
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def last_user_message(body: dict) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def test_the_models_literals_run_as_typed_parameters(proxy, direct, scripted_llm):
    sql = (
        f"SELECT count() AS n, round(sum(amount), 2) AS total FROM {DB}.orders "
        "WHERE customer = 'acme' AND placed_at >= '2026-10-02' AND status IN ('placed', 'shipped') AND amount > 20"
    )
    scripted_llm.script([{"match": "acme orders since", "responses": [plain(sql)]}])
    got = connect(proxy, database=DB).execute("ASK 'acme orders since October 2nd'")
    # 18.16 itself cannot compare a DateTime with a day ('2026-10-02'); as a DateTime parameter it can.
    reference = sql.replace("'2026-10-02'", "'2026-10-02 00:00:00'")
    assert got == connect(direct).execute(reference) and got[0][0] > 0

    doc = explain(proxy, "acme orders since October 2nd")
    assert doc["sql"] == (
        f"SELECT count() AS n, round(sum(amount), 2) AS total FROM {DB}.orders WHERE customer = {{customer:String}} "
        "AND placed_at >= {placed_at:DateTime} AND status IN ({status:String}, {status_2:String}) "
        "AND amount > {amount:Float64}"
    )
    assert json.loads(doc["params"]) == {
        "customer": "acme",
        "placed_at": "2026-10-02 00:00:00",
        "status": "placed",
        "status_2": "shipped",
        "amount": 20.0,
    }
    # The prompt asked for plain SQL and showed no placeholder to copy.
    system = scripted_llm.chat_requests()[0]["messages"][0]["content"]
    assert "plain SQL literals" in system and "{tenant:String}" not in system


@pytest.mark.parametrize("name", ["t", "d", "ts", "fn", "FN", "x"])
def test_any_placeholder_name_clickhouse_accepts_binds(proxy, direct, scripted_llm, name):
    sql = f"SELECT count() AS n FROM {DB}.orders WHERE customer = {{{name}:String}}"
    scripted_llm.script([{"match": "orders of", "responses": [with_params(sql, {name: "globex"})]}])
    got = connect(proxy, database=DB).execute(f"ASK 'orders of globex ({name})'")
    assert got == connect(direct).execute(f"SELECT count() AS n FROM {DB}.orders WHERE customer = 'globex'")
    assert got[0][0] == 20


def test_placeholders_without_a_type_take_their_columns_type(proxy, direct, scripted_llm):
    sql = f"SELECT count() AS n FROM {DB}.orders WHERE customer = {{who}} AND day = {{when}} AND order_id > {{n}}"
    params = {"who": "initech", "when": "2026-10-03", "n": 2}
    scripted_llm.script([{"match": "untyped", "responses": [with_params(sql, params)]}])
    got = connect(proxy, database=DB).execute("ASK 'untyped initech orders'")
    expected = connect(direct).execute(
        f"SELECT count() AS n FROM {DB}.orders WHERE customer = 'initech' AND day = '2026-10-03' AND order_id > 2"
    )
    assert got == expected and got[0][0] > 0
    doc = explain(proxy, "untyped initech orders")
    assert "{who:String}" in doc["sql"] and "{when:Date}" in doc["sql"] and "{n:Int64}" in doc["sql"]


def test_a_refused_answer_goes_back_once_with_the_reason(proxy, direct, scripted_llm):
    wrong = f"SELECT count() AS n FROM {DB}.order_lines"
    right = f"SELECT count() AS n FROM {DB}.orders"
    scripted_llm.script([{"match": "how many orders", "responses": [plain(wrong), plain(right)]}])
    assert connect(proxy, database=DB).execute("ASK 'how many orders'") == [(60,)]
    requests = scripted_llm.chat_requests()
    assert len(requests) == 2
    repair = last_user_message(requests[1])
    assert "Aurora refused that query" in repair and f"{DB}.order_lines" in repair and "how many orders" in repair


def test_a_second_refusal_reaches_the_client(proxy, scripted_llm):
    scripted_llm.script([{"match": "still wrong", "responses": [plain(f"SELECT * FROM {DB}.nope")]}])
    with pytest.raises(errors.ServerException) as info:
        connect(proxy, database=DB).execute("ASK 'still wrong'")
    assert info.value.code == 497 and f"{DB}.nope" in info.value.message
    assert len(scripted_llm.chat_requests()) == 2


def test_the_prompt_offers_the_request_database_and_never_machinery(proxy, scripted_llm):
    scripted_llm.script([{"match": "", "responses": [plain(f"SELECT sum(amount) AS total FROM {DB}.orders")]}])
    connect(proxy, database=DB).execute("ASK 'total amount of all orders'")
    prompt = last_user_message(scripted_llm.chat_requests()[0])
    assert f"{DB}.orders" in prompt
    assert "aurora_stage_orders" not in prompt
    assert OTHER not in prompt


def test_a_follow_up_in_one_native_session_carries_the_previous_question(proxy, direct, scripted_llm):
    first = f"SELECT customer, count() AS orders FROM {DB}.orders GROUP BY customer ORDER BY customer"
    second = f"SELECT customer, count() AS orders FROM {DB}.orders WHERE customer = 'acme' GROUP BY customer"
    scripted_llm.script(
        [
            {"match": "only for acme", "responses": [plain(second)]},
            {"match": "orders per customer", "responses": [plain(first)]},
        ]
    )
    client = connect(proxy, database=DB)
    assert client.execute("ASK 'orders per customer'") == [("acme", 20), ("globex", 20), ("initech", 20)]
    assert client.execute("ASK 'and only for acme?'") == [("acme", 20)]
    prompt = last_user_message(scripted_llm.chat_requests()[1])
    assert "Previous question: orders per customer" in prompt
    assert f"Its SQL: {first}" in prompt
    assert prompt.index("Previous question") < prompt.index("Question: and only for acme?")

    # EXPLAIN ASK names what a follow-up refined; another connection has no previous question.
    rows, columns = client.execute("EXPLAIN ASK 'and only for acme?'", with_column_types=True)
    assert dict(zip([c[0] for c in columns], rows[0]))["follows"] == "and only for acme?"
    rows, columns = connect(proxy, database=DB).execute(
        "EXPLAIN ASK 'and only for acme?' SETTINGS aurora_no_cache = 1", with_column_types=True
    )
    assert dict(zip([c[0] for c in columns], rows[0]))["follows"] == ""
    # A question that stands alone is no follow-up, even in the same session.
    client.execute("ASK 'orders per customer'")
    assert "Previous question" not in last_user_message(scripted_llm.chat_requests()[-1])


def test_a_follow_up_over_http_needs_the_same_session_id(proxy, scripted_llm):
    first = f"SELECT customer, sum(amount) AS total FROM {DB}.orders GROUP BY customer"
    second = f"SELECT customer, sum(amount) AS total FROM {DB}.orders WHERE status = 'shipped' GROUP BY customer"
    scripted_llm.script(
        [
            {"match": "only shipped", "responses": [plain(second)]},
            {"match": "amount per customer", "responses": [plain(first)]},
        ]
    )

    def ask(question: str, session: str) -> None:
        query = urllib.parse.quote(f"ASK '{question}'")
        url = f"{proxy.http_url}/?query={query}&database={DB}&session_id={session}"
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200

    ask("amount per customer", "s1")
    ask("but only shipped ones", "s1")
    assert "Previous question: amount per customer" in last_user_message(scripted_llm.chat_requests()[1])
    ask("but only shipped ones", "s2")
    assert "Previous question" not in last_user_message(scripted_llm.chat_requests()[2])


@pytest.fixture(scope="module")
def voting_proxy(clickhouse, scripted_llm_server, tmp_path_factory, shop):
    """A proxy that asks for three candidates per question and keeps the one most of them agree with."""
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    yield from scripted_ask_proxy(
        clickhouse, scripted_llm_server, tmp_path_factory.mktemp("ask-voting-proxy"), "--ask-candidates", "3"
    )


def test_candidates_are_chosen_by_agreement_of_their_results(voting_proxy, direct, scripted_llm):
    lone = f"SELECT count() AS n FROM {DB}.orders WHERE customer = 'globex' AND status = 'placed'"
    agree_a = f"SELECT count() AS n FROM {DB}.orders WHERE customer = 'acme'"
    agree_b = f"SELECT countIf(customer = 'acme') AS n FROM {DB}.orders"
    assert connect(direct).execute(lone) != connect(direct).execute(agree_a) == connect(direct).execute(agree_b)
    scripted_llm.script([{"match": "orders of acme", "responses": [plain(lone), plain(agree_a), plain(agree_b)]}])
    # The first answer (temperature 0) stands alone; the two sampled ones agree with each other and outvote it.
    assert connect(voting_proxy, database=DB).execute("ASK 'orders of acme'") == [(20,)]
    assert [r["temperature"] for r in scripted_llm.chat_requests()] == [0.0, 0.7, 0.7]
    doc = explain(voting_proxy, "orders of acme")  # from the cache: the chosen plan
    assert doc["sql"] == f"SELECT count() AS n FROM {DB}.orders WHERE customer = {{customer:String}}"


def test_an_answer_that_does_not_run_gets_no_vote(voting_proxy, direct, scripted_llm):
    first = f"SELECT count() AS n FROM {DB}.orders WHERE customer = 'globex'"
    broken = f"SELECT count() AS n FROM {DB}.orders WHERE no_such_column = 1"
    other = f"SELECT count() AS n FROM {DB}.orders WHERE customer = 'initech' AND status = 'placed'"
    scripted_llm.script([{"match": "globex orders", "responses": [plain(first), plain(broken), plain(other)]}])
    # One vote each for the two that ran: the tie keeps the first.
    assert connect(voting_proxy, database=DB).execute("ASK 'globex orders'") == connect(direct).execute(first)


def test_candidates_that_all_disagree_keep_the_first(voting_proxy, direct, scripted_llm):
    answers = [f"SELECT count() AS n FROM {DB}.orders WHERE customer = '{c}' AND status = 'shipped'"
               for c in ("acme", "globex", "initech")]
    scripted_llm.script([{"match": "shipped orders", "responses": [plain(a) for a in answers]}])
    got = connect(voting_proxy, database=DB).execute("ASK 'shipped orders'")
    assert got == connect(direct).execute(answers[0])
    assert len(scripted_llm.chat_requests()) == 3


def test_a_column_sought_in_the_wrong_table_is_pointed_to_the_right_one(proxy, direct, scripted_llm):
    wrong = f"SELECT country, count() AS orders FROM {DB}.orders GROUP BY country ORDER BY country"
    right = (
        f"SELECT c.country, count() AS orders FROM {DB}.orders AS o INNER JOIN {DB}.customers AS c "
        "ON o.customer = c.customer GROUP BY c.country ORDER BY c.country"
    )
    scripted_llm.script([{"match": "", "responses": [plain(wrong), plain(right)]}])
    got = connect(proxy, database=DB).execute("ASK 'orders per country of the customer'")
    assert got == [("DE", 20), ("GB", 20), ("US", 20)]
    correction = last_user_message(scripted_llm.chat_requests()[1])
    assert "ClickHouse rejected that query" in correction
    assert f"Column country is not in {DB}.orders; it is a column of {DB}.customers" in correction


@pytest.fixture(scope="module")
def checking_proxy(clickhouse, scripted_llm_server, tmp_path_factory, shop):
    """A proxy that runs an answer read-only first and sends one that finds nothing back to the model."""
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    yield from scripted_ask_proxy(
        clickhouse, scripted_llm_server, tmp_path_factory.mktemp("ask-checking-proxy"), "--ask-repair-empty", "true"
    )


def test_an_answer_that_finds_nothing_goes_back_to_the_model(checking_proxy, proxy, direct, scripted_llm):
    misspelt = f"SELECT count() AS n FROM {DB}.orders WHERE status = 'Shipped'"
    right = f"SELECT count() AS n FROM {DB}.orders WHERE status = 'shipped'"
    assert connect(direct).execute(misspelt) == [(0,)] and connect(direct).execute(right) != [(0,)]
    script = [
        {"match": "That query ran but returned 0.", "responses": [plain(right)]},
        {"match": "", "responses": [plain(misspelt)]},
    ]
    scripted_llm.script(script)
    assert connect(checking_proxy, database=DB).execute("ASK 'how many orders were shipped'") == connect(direct).execute(right)
    requests = scripted_llm.chat_requests()
    assert len(requests) == 2
    assert "If nothing is the right answer" in last_user_message(requests[1])
    # Without --ask-repair-empty the count of nothing is the answer, and the model is asked once.
    scripted_llm.reset()
    scripted_llm.script(script)
    assert connect(proxy, database=DB).execute("ASK 'how many orders were shipped'") == [(0,)]
    assert len(scripted_llm.chat_requests()) == 1


def test_an_empty_answer_whose_repair_is_refused_is_kept(checking_proxy, scripted_llm):
    empty = f"SELECT order_id FROM {DB}.orders WHERE customer = 'nobody'"
    scripted_llm.script([
        {"match": "That query ran but returned no rows.", "responses": [plain(f"DROP TABLE {DB}.orders")]},
        {"match": "", "responses": [plain(empty)]},
    ])
    assert connect(checking_proxy, database=DB).execute("ASK 'orders of nobody'") == []
    assert len(scripted_llm.chat_requests()) == 2
