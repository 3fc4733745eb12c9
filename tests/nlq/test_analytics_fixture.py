"""fixtures/analytics against the real ClickHouse: the data is consistent, every reference query of questions.yaml
runs and answers something, and the examples of semantic.yaml run with their parameters (checks shared with the
other sample databases: support/question_sets.py)."""

from __future__ import annotations

import pytest
from clickhouse_driver import Client

from support import analytics as fixture
from support import question_sets as checks

QUESTIONS = fixture.questions()
TABLES = ("tenants", "users", "events", "purchases")


@pytest.fixture(scope="module")
def ch(direct, analytics):
    client = Client(direct.host, port=direct.native_port)
    yield client
    client.disconnect()


def one(ch, sql: str):
    return ch.execute(sql)[0][0]


# --- the question set itself ----------------------------------------------------------------------------------


def test_question_set_is_well_formed():
    checks.check_well_formed(QUESTIONS, minimum=64, per_difficulty=8, joins=8)


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
        assert one(ch, f"SELECT count() FROM analytics.{table}") == len(getattr(data, table)), table
    assert 45_000 <= len(data.events) <= 60_000
    assert not fixture.ensure_loaded(direct.host, direct.native_port), "a second load found the data and did nothing"


def test_events_fit_their_tables(ch):
    span = ch.execute("SELECT min(timestamp), max(timestamp) FROM analytics.events")[0]
    assert str(span[0]) >= "2026-10-01 00:00:00" and str(span[1]) < "2026-12-01 00:00:00"
    assert one(ch, "SELECT count() FROM analytics.events WHERE tenant_id NOT IN (SELECT tenant_id FROM analytics.tenants)") == 0
    assert one(
        ch,
        "SELECT count() FROM analytics.events WHERE user_id != '' AND user_id NOT IN (SELECT user_id FROM analytics.users)",
    ) == 0
    # nobody acts before signing up, and events stay with the user's own tenant
    assert one(
        ch,
        "SELECT count() FROM analytics.events AS e INNER JOIN analytics.users AS u ON e.user_id = u.user_id"
        " WHERE toDate(e.timestamp) < u.signup_date OR e.tenant_id != u.tenant_id",
    ) == 0
    # exactly the users who signed up in Oct-Nov 2026 have one signup event each, on their signup day
    assert ch.execute(
        "SELECT count(), uniqExact(user_id) FROM analytics.events WHERE event_type = 'signup'"
    )[0] == ch.execute("SELECT count(), count() FROM analytics.users WHERE signup_date >= '2026-10-01'")[0]
    assert one(
        ch,
        "SELECT count() FROM analytics.events AS e INNER JOIN analytics.users AS u ON e.user_id = u.user_id"
        " WHERE e.event_type = 'signup' AND toDate(e.timestamp) != u.signup_date",
    ) == 0
    assert one(ch, "SELECT count() FROM analytics.events WHERE event_type NOT IN ('purchase', 'refund') AND revenue != 0") == 0
    assert one(ch, "SELECT min(timestamp) >= '2026-10-15 00:00:00' FROM analytics.events WHERE tenant_id = 'tyrell'") == 1


def test_purchases_match_purchase_and_refund_events(ch):
    purchases = one(ch, "SELECT count() FROM analytics.purchases")
    assert purchases == one(ch, "SELECT count() FROM analytics.events WHERE event_type = 'purchase'")
    matched = ch.execute(
        "SELECT count() FROM analytics.purchases AS p INNER JOIN analytics.events AS e ON p.event_id = e.event_id"
        " WHERE e.event_type = 'purchase' AND e.revenue = p.amount AND e.user_id = p.user_id"
        " AND e.tenant_id = p.tenant_id AND e.timestamp = p.timestamp"
        " AND visitParamExtractString(e.payload, 'purchase_id') = p.purchase_id"
    )[0][0]
    assert matched == purchases
    refunds = ch.execute(
        "SELECT visitParamExtractString(payload, 'purchase_id') AS purchase_id, revenue FROM analytics.events"
        " WHERE event_type = 'refund' ORDER BY purchase_id"
    )
    refunded = ch.execute("SELECT purchase_id, amount FROM analytics.purchases WHERE refunded = 1 ORDER BY purchase_id")
    assert refunds == refunded and refunds
    currencies = ch.execute(
        "SELECT count() FROM analytics.purchases AS p INNER JOIN analytics.tenants AS t ON p.tenant_id = t.tenant_id"
        " WHERE p.currency != t.currency"
    )
    assert currencies == [(0,)]


# --- semantic.yaml --------------------------------------------------------------------------------------------


def test_semantic_file_names_real_tables_and_columns(ch):
    checks.check_semantic_names_real_columns(ch, fixture.semantic(), "analytics", TABLES)


@pytest.mark.parametrize("example", fixture.semantic()["examples"], ids=lambda e: e["question"][:40])
def test_semantic_example_runs_with_its_params(ch, example):
    checks.check_example_runs(ch, example, QUESTIONS)


# --- parameterized references (for scripted-LLM runs of the evaluation) ---------------------------------------


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_parameterized_reference_gives_the_reference_result(ch, q):
    checks.check_parameterized_reference(ch, q)


def test_scripted_answers_are_a_valid_script():
    checks.check_scripted_answers(QUESTIONS, fixture.scripted_answers())
