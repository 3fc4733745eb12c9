"""fixtures/shop against the real ClickHouse: the data is consistent, every reference query of questions.yaml
runs and answers something, and the examples of semantic.yaml run with their parameters (checks shared with the
other sample databases: support/question_sets.py)."""

from __future__ import annotations

import pytest
from clickhouse_driver import Client

from support import question_sets as checks
from support import shop as fixture

QUESTIONS = fixture.questions()
TABLES = ("customers", "products", "orders", "order_items", "shipments")
STATUSES = ("placed", "shipped", "delivered", "cancelled", "returned")


@pytest.fixture(scope="module")
def ch(direct, shop):
    client = Client(direct.host, port=direct.native_port)
    yield client
    client.disconnect()


def one(ch, sql: str):
    return ch.execute(sql)[0][0]


# --- the question set itself ----------------------------------------------------------------------------------


def test_question_set_is_well_formed():
    checks.check_well_formed(QUESTIONS, minimum=36, per_difficulty=12, joins=8)
    tags = [t for q in QUESTIONS for t in q["tags"]]
    for kind in ("relative", "per_group", "ratio", "countif", "argmax", "week"):
        assert kind in tags, f"no question exercises {kind}"


# --- every reference query on the real server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def results(ch):
    return {q["id"]: ch.execute(q["sql"]) for q in QUESTIONS}


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_reference_sql_runs_and_answers(ch, q):
    checks.check_answers(q, ch.execute(q["sql"]))


def test_no_two_questions_share_a_result(results):
    checks.check_no_shared_results(QUESTIONS, results)


def test_ranked_answers_have_no_ties_at_the_cut(ch):
    checks.check_no_ties_at_the_cut(ch, QUESTIONS)
    checks.check_no_ties_per_group(ch, QUESTIONS)


# --- the data is consistent across tables ---------------------------------------------------------------------


def test_loaded_data_matches_the_generator(ch, direct):
    data = fixture.generated()
    for table in TABLES:
        assert one(ch, f"SELECT count() FROM shop.{table}") == len(getattr(data, table)), table
    assert sum(len(getattr(data, table)) for table in TABLES) <= 60_000
    assert not fixture.ensure_loaded(direct.host, direct.native_port), "a second load found the data and did nothing"


def test_customers_and_products_are_named_uniquely(ch):
    for table in ("customers", "products"):
        assert ch.execute(f"SELECT count(), uniqExact(name) FROM shop.{table}")[0] == (
            one(ch, f"SELECT count() FROM shop.{table}"),
        ) * 2, table
    assert one(ch, "SELECT count() - uniqExact(email) FROM shop.customers") == 0
    assert one(ch, "SELECT count() - uniqExact(sku) FROM shop.products") == 0


def test_orders_fit_customers_and_the_span(ch):
    span = ch.execute("SELECT min(order_time), max(order_time) FROM shop.orders")[0]
    assert str(span[0]) >= "2026-10-01 00:00:00" and str(span[1]) < "2026-12-01 00:00:00"
    assert one(ch, "SELECT count() FROM shop.orders WHERE customer_id NOT IN (SELECT customer_id FROM shop.customers)") == 0
    # nobody orders before signing up, and orders ship to the customer's country
    assert one(
        ch,
        "SELECT count() FROM shop.orders AS o INNER JOIN shop.customers AS c ON o.customer_id = c.customer_id"
        " WHERE toDate(o.order_time) < c.signup_date OR o.shipping_country != c.country",
    ) == 0
    # order numbers follow the order time
    times = [t for _, t in ch.execute("SELECT order_id, order_time FROM shop.orders ORDER BY order_id")]
    assert times == sorted(times)
    values = dict(ch.execute("SELECT 'status', groupUniqArray(status) FROM shop.orders UNION ALL "
                             "SELECT 'payment_method', groupUniqArray(payment_method) FROM shop.orders UNION ALL "
                             "SELECT 'channel', groupUniqArray(channel) FROM shop.orders UNION ALL "
                             "SELECT 'coupon_code', groupUniqArray(coupon_code) FROM shop.orders"))
    assert sorted(values["status"]) == sorted(STATUSES)
    assert sorted(values["payment_method"]) == ["bank_transfer", "card", "gift_card", "paypal"]
    assert sorted(values["channel"]) == ["mobile_app", "web"]
    assert sorted(values["coupon_code"]) == ["", "AUTUMN5", "BLACKFRIDAY20", "WELCOME10"]


def test_order_money_adds_up(ch):
    # items_amount is the sum of the lines; total = items_amount - discount + shipping_fee
    assert one(
        ch,
        "SELECT count() FROM shop.orders AS o INNER JOIN"
        " (SELECT order_id, round(sum(quantity * unit_price), 2) AS lines FROM shop.order_items GROUP BY order_id) AS l"
        " ON o.order_id = l.order_id WHERE abs(o.items_amount - l.lines) > 0.005",
    ) == 0
    assert one(ch, "SELECT count() FROM shop.orders WHERE abs(items_amount - discount + shipping_fee - total) > 0.005") == 0
    assert one(
        ch,
        "SELECT countIf(shipping_fee != if(items_amount < 49, 4.9, 0)) FROM shop.orders",
    ) == 0
    # coupons: BLACKFRIDAY20 on the Black Friday weekend only, AUTUMN5 in October only, WELCOME10 on a first order
    assert ch.execute(
        "SELECT coupon_code, min(order_time) >= toDateTime('2026-11-27 00:00:00', 'UTC'),"
        " max(order_time) < toDateTime('2026-11-01 00:00:00', 'UTC'), countIf(discount <= 0)"
        " FROM shop.orders WHERE coupon_code != '' GROUP BY coupon_code ORDER BY coupon_code"
    ) == [("AUTUMN5", 0, 1, 0), ("BLACKFRIDAY20", 1, 0, 0), ("WELCOME10", 0, 0, 0)]
    assert one(ch, "SELECT count() FROM shop.orders WHERE coupon_code = '' AND discount != 0") == 0
    assert one(
        ch,
        "SELECT count() FROM shop.orders AS o INNER JOIN"
        " (SELECT customer_id, min(order_time) AS first FROM shop.orders GROUP BY customer_id) AS f"
        " ON o.customer_id = f.customer_id WHERE o.coupon_code = 'WELCOME10' AND o.order_time != f.first",
    ) == 0


def test_order_lines_name_products_once(ch):
    assert one(ch, "SELECT count() FROM shop.order_items WHERE order_id NOT IN (SELECT order_id FROM shop.orders)") == 0
    assert one(ch, "SELECT count() FROM shop.orders WHERE order_id NOT IN (SELECT order_id FROM shop.order_items)") == 0
    assert one(ch, "SELECT count() FROM shop.order_items WHERE product_id NOT IN (SELECT product_id FROM shop.products)") == 0
    # lines 1..n, n at most 4, each product once per order
    assert one(
        ch,
        "SELECT count() FROM (SELECT order_id, count() AS n, max(line_no) AS last, uniqExact(product_id) AS products"
        " FROM shop.order_items GROUP BY order_id) WHERE n > 4 OR last != n OR products != n",
    ) == 0
    # the price paid is the list price, or 15 % off electronics on the Black Friday weekend; nothing before launch
    assert one(
        ch,
        "SELECT count() FROM (SELECT i.product_id AS product_id, i.unit_price AS unit_price, o.order_time AS order_time"
        " FROM shop.order_items AS i INNER JOIN shop.orders AS o ON i.order_id = o.order_id) AS l"
        " INNER JOIN shop.products AS p ON l.product_id = p.product_id"
        " WHERE toDate(l.order_time) < p.launched_on OR abs(l.unit_price - if(p.category = 'electronics'"
        " AND l.order_time >= toDateTime('2026-11-27 00:00:00', 'UTC'), round(p.price * 0.85, 2), p.price)) > 0.005",
    ) == 0


def test_shipments_follow_the_order_status(ch):
    # exactly one shipment per shipped, delivered or returned order; none for placed or cancelled ones
    assert ch.execute(
        "SELECT count(), uniqExact(order_id) FROM shop.shipments"
    )[0] == ch.execute(
        "SELECT count(), count() FROM shop.orders WHERE status IN ('shipped', 'delivered', 'returned')"
    )[0]
    assert one(
        ch,
        "SELECT count() FROM shop.shipments WHERE order_id NOT IN"
        " (SELECT order_id FROM shop.orders WHERE status IN ('shipped', 'delivered', 'returned'))",
    ) == 0
    # delivered_at is NULL exactly while the parcel is on its way; time runs forward and stays in the span
    assert one(
        ch,
        "SELECT count() FROM shop.shipments AS s INNER JOIN shop.orders AS o ON s.order_id = o.order_id"
        " WHERE (o.status = 'shipped') != isNull(s.delivered_at) OR s.shipped_at <= o.order_time"
        " OR s.delivered_at <= s.shipped_at OR s.shipped_at >= toDateTime('2026-12-01 00:00:00', 'UTC')"
        " OR s.delivered_at >= toDateTime('2026-12-01 00:00:00', 'UTC')",
    ) == 0
    assert ch.execute("SELECT count(delivered_at) > 0, countIf(isNull(delivered_at)) > 0 FROM shop.shipments")[0] == (1, 1)


# --- semantic.yaml --------------------------------------------------------------------------------------------


def test_semantic_file_names_real_tables_and_columns(ch):
    checks.check_semantic_names_real_columns(ch, fixture.semantic(), "shop", TABLES)


@pytest.mark.parametrize("example", fixture.semantic()["examples"], ids=lambda e: e["question"][:40])
def test_semantic_example_runs_with_its_params(ch, example):
    checks.check_example_runs(ch, example, QUESTIONS)


# --- parameterized references (for scripted-LLM runs of the evaluation) ---------------------------------------


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_parameterized_reference_gives_the_reference_result(ch, q):
    checks.check_parameterized_reference(ch, q)


def test_scripted_answers_are_a_valid_script():
    checks.check_scripted_answers(QUESTIONS, fixture.scripted_answers())
