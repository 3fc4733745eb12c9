"""fixtures/analytics against the real ClickHouse: the data is consistent, every reference query of questions.yaml
runs and answers something, and the examples of semantic.yaml run with their parameters."""

from __future__ import annotations

import collections
import re

import pytest
from clickhouse_driver import Client

from support import analytics as fixture

QUESTIONS = fixture.questions()
DIFFICULTIES = {"easy", "medium", "hard"}
PLACEHOLDER = re.compile(r"\{(\w+):(\w+)\}")


@pytest.fixture(scope="module")
def ch(direct, analytics):
    client = Client(direct.host, port=direct.native_port)
    yield client
    client.disconnect()


def one(ch, sql: str):
    return ch.execute(sql)[0][0]


# --- the question set itself ----------------------------------------------------------------------------------


def test_question_set_is_well_formed():
    assert len(QUESTIONS) >= 45
    ids = [q["id"] for q in QUESTIONS]
    assert len(set(ids)) == len(ids), "duplicate ids"
    texts = [q["question"].strip().lower() for q in QUESTIONS]
    assert len(set(texts)) == len(texts), "duplicate questions"
    for q in QUESTIONS:
        assert set(q) <= {"id", "question", "sql", "tags", "ordered", "same_result_as"}, q["id"]
        assert len(DIFFICULTIES & set(q["tags"])) == 1, f"{q['id']}: exactly one of {DIFFICULTIES} in tags"
        sql = q["sql"]
        # ClickHouse 18.16 dialect: no CTEs, window functions or `::` casts.
        assert "::" not in sql and not re.match(r"\s*WITH\b", sql, re.I), q["id"]
        assert not re.search(r"\bOVER\s*\(", sql, re.I), q["id"]
        assert "{" not in sql, f"{q['id']}: reference SQL carries literal values, not placeholders"
        if q.get("ordered"):
            assert "ORDER BY" in sql, f"{q['id']}: ordered without ORDER BY"
        for other in q.get("same_result_as", []):
            assert other in ids, f"{q['id']}: same_result_as names unknown {other}"
    counts = collections.Counter(d for q in QUESTIONS for d in q["tags"] if d in DIFFICULTIES)
    assert min(counts[d] for d in DIFFICULTIES) >= 8, counts
    assert sum("join" in q["tags"] for q in QUESTIONS) >= 8


# --- every reference query on the real server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def results(ch):
    return {q["id"]: ch.execute(q["sql"]) for q in QUESTIONS}


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_reference_sql_runs_and_answers(ch, q):
    rows = ch.execute(q["sql"])
    assert rows, f"{q['id']} returned no rows"
    # A lone zero or NULL would make a useless evaluation item (any query that matches nothing would "pass").
    if len(rows) == 1 and len(rows[0]) == 1:
        assert rows[0][0] not in (0, None, ""), f"{q['id']} answers {rows[0][0]!r}"


def test_no_two_questions_share_a_result(results):
    by_result = collections.defaultdict(list)
    for qid, rows in results.items():
        by_result[repr(sorted(repr(r) for r in rows))].append(qid)
    intended = {(q["id"], other) for q in QUESTIONS for other in q.get("same_result_as", [])}
    clashes = [
        ids
        for ids in by_result.values()
        if len(ids) > 1 and not all((a, b) in intended or (b, a) in intended for a in ids for b in ids if a < b)
    ]
    assert not clashes, f"questions with identical results: {clashes}"


def test_ranked_answers_have_no_ties_at_the_cut(ch):
    """A top-N question is only unambiguous if the N-th and (N+1)-th values differ."""
    for q in QUESTIONS:
        m = re.search(r"ORDER BY (\w+) DESC, [\w.]+ LIMIT (\d+)$", q["sql"])
        if not m:
            continue
        column, n = m.group(1), int(m.group(2))
        rows = ch.execute(q["sql"][: m.start()] + f"ORDER BY {column} DESC LIMIT {n + 1}", with_column_types=True)
        names = [c[0] for c in rows[1]]
        values = [r[names.index(column)] for r in rows[0]]
        assert len(set(values)) == len(values) or values[n - 1] != values[-1], f"{q['id']}: tie at the cut {values}"


# --- the data is consistent across tables ---------------------------------------------------------------------


def test_loaded_data_matches_the_generator(ch, direct):
    data = fixture.generated()
    for table in ("tenants", "users", "events", "purchases"):
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


def literal(value, type_name: str) -> str:
    """A ClickHouse literal for a parameter value (test-side only: checks that the example runs)."""
    if re.match(r"U?Int\d+|Float\d+", type_name):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def test_semantic_file_names_real_tables_and_columns(ch):
    doc = fixture.semantic()
    assert set(doc) == {"tables", "joins", "examples"}
    columns = {
        (f"{db}.{table}", name)
        for db, table, name in ch.execute("SELECT database, table, name FROM system.columns WHERE database = 'analytics'")
    }
    for table, spec in doc["tables"].items():
        assert spec["description"] and spec["synonyms"], table
        for column, col_spec in spec["columns"].items():
            assert (table, column) in columns, f"{table}.{column}"
            assert col_spec["description"], f"{table}.{column}"
        assert {c for t, c in columns if t == table} == set(spec["columns"]), f"{table}: every column described"
    for join in doc["joins"]:
        for side in ("left", "right"):
            db, table, column = join[side].split(".")
            assert (f"{db}.{table}", column) in columns, join


@pytest.mark.parametrize("example", fixture.semantic()["examples"], ids=lambda e: e["question"][:40])
def test_semantic_example_runs_with_its_params(ch, example):
    names = [m.group(1) for m in PLACEHOLDER.finditer(example["sql"])]
    assert set(names) == set(example["params"]), "placeholders and params match one to one"
    sql = PLACEHOLDER.sub(lambda m: literal(example["params"][m.group(1)], m.group(2)), example["sql"])
    rows = ch.execute(sql)
    assert rows and rows[0][0] not in (0, None)
    assert example["question"].strip().lower() not in {q["question"].strip().lower() for q in QUESTIONS}


# --- parameterized references (for scripted-LLM runs of the evaluation) ---------------------------------------


@pytest.mark.parametrize("q", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_parameterized_reference_gives_the_reference_result(ch, results, q):
    sql, params = fixture.parameterized(q["sql"])
    assert set(m.group(1) for m in PLACEHOLDER.finditer(sql)) == set(params)
    bound = PLACEHOLDER.sub(lambda m: literal(params[m.group(1)], m.group(2)), sql)
    assert ch.execute(bound) == results[q["id"]]


def test_scripted_answers_are_a_valid_script():
    from support.scripted_llm import validate_rules

    rules = fixture.scripted_answers()
    validate_rules(rules)
    assert len(rules) == len(QUESTIONS)
    # each question is matched by its own rule first (rules are tried in order, match is a substring)
    for q in QUESTIONS:
        first = next(r for r in rules if r["match"] in q["question"])
        assert first["match"] == q["question"]
