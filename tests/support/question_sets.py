"""Checks that every sample database's evaluation files pass (tests/nlq/test_<name>_fixture.py call them): the
question set is well formed for ClickHouse 18.16, each reference query answers something and no two answer the
same, top-N cuts have no ties, the semantic file names real tables and columns and its examples run."""

from __future__ import annotations

import collections
import re

from support.sample_db import PLACEHOLDER, bind, parameterized

DIFFICULTIES = {"easy", "medium", "hard"}
KEYS = {"id", "question", "sql", "tags", "ordered", "same_result_as"}


def check_well_formed(questions: list, minimum: int, per_difficulty: int, joins: int) -> None:
    assert len(questions) >= minimum, len(questions)
    ids = [q["id"] for q in questions]
    assert len(set(ids)) == len(ids), "duplicate ids"
    texts = [q["question"].strip().lower() for q in questions]
    assert len(set(texts)) == len(texts), "duplicate questions"
    for q in questions:
        assert set(q) <= KEYS, q["id"]
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
    counts = collections.Counter(d for q in questions for d in q["tags"] if d in DIFFICULTIES)
    assert min(counts[d] for d in DIFFICULTIES) >= per_difficulty, counts
    assert sum("join" in q["tags"] for q in questions) >= joins


def check_answers(q: dict, rows: list) -> None:
    assert rows, f"{q['id']} returned no rows"
    # A lone zero or NULL would make a useless evaluation item (any query that matches nothing would "pass").
    if len(rows) == 1 and len(rows[0]) == 1:
        assert rows[0][0] not in (0, None, ""), f"{q['id']} answers {rows[0][0]!r}"


def check_no_shared_results(questions: list, results: dict) -> None:
    by_result = collections.defaultdict(list)
    for qid, rows in results.items():
        by_result[repr(sorted(repr(r) for r in rows))].append(qid)
    intended = {(q["id"], other) for q in questions for other in q.get("same_result_as", [])}
    clashes = [
        ids
        for ids in by_result.values()
        if len(ids) > 1 and not all((a, b) in intended or (b, a) in intended for a in ids for b in ids if a < b)
    ]
    assert not clashes, f"questions with identical results: {clashes}"


def check_no_ties_at_the_cut(ch, questions: list) -> None:
    """A top-N question is only unambiguous if the N-th and (N+1)-th values differ."""
    for q in questions:
        m = re.search(r"ORDER BY (\w+) DESC, [\w.]+ LIMIT (\d+)$", q["sql"])
        if not m:
            continue
        column, n = m.group(1), int(m.group(2))
        rows = ch.execute(q["sql"][: m.start()] + f"ORDER BY {column} DESC LIMIT {n + 1}", with_column_types=True)
        names = [c[0] for c in rows[1]]
        values = [r[names.index(column)] for r in rows[0]]
        assert len(set(values)) == len(values) or values[n - 1] != values[-1], f"{q['id']}: tie at the cut {values}"


def check_no_ties_per_group(ch, questions: list) -> None:
    """The same for top-N per group (`ORDER BY g, x DESC LIMIT n BY g`): in every group the n-th and (n+1)-th
    values differ."""
    for q in questions:
        m = re.search(r"ORDER BY ([\w.]+), (\w+) DESC LIMIT (\d+) BY ([\w.]+)$", q["sql"])
        if not m:
            continue
        group, column, n = m.group(1), m.group(2), int(m.group(3))
        assert m.group(4) == group, q["id"]
        rows, types = ch.execute(q["sql"][: m.start()] + f"ORDER BY {group}, {column} DESC LIMIT {n + 1} BY {group}",
                                 with_column_types=True)
        names = [c[0] for c in types]
        # 18.16 names a result column `p.category` as `category`
        key = names.index(group if group in names else group.split(".")[-1])
        by_group = collections.defaultdict(list)
        for r in rows:
            by_group[r[key]].append(r[names.index(column)])
        for key, values in by_group.items():
            assert len(values) <= n or values[n - 1] != values[n], f"{q['id']}: tie at the cut in {key}: {values}"


def check_semantic_names_real_columns(ch, doc: dict, database: str, tables: tuple) -> None:
    """Every table of the sample database is described, and every name the file uses exists on the server."""
    assert set(doc) == {"tables", "joins", "examples"}
    assert set(doc["tables"]) == {f"{database}.{t}" for t in tables}
    columns = {
        (f"{db}.{table}", name)
        for db, table, name in ch.execute(
            f"SELECT database, table, name FROM system.columns WHERE database = '{database}'"
        )
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


def check_example_runs(ch, example: dict, questions: list) -> None:
    names = [m.group(1) for m in PLACEHOLDER.finditer(example["sql"])]
    assert names, "examples are parameterized"
    assert set(names) == set(example["params"]), "placeholders and params match one to one"
    rows = ch.execute(bind(example["sql"], example["params"]))
    assert rows and rows[0][0] not in (0, None)
    assert example["question"].strip().lower() not in {q["question"].strip().lower() for q in questions}


def frozen(sql: str, unix_time: int) -> str:
    """`sql` with now() and today() fixed at one moment, so that two runs of a relative-date query agree."""
    moment = f"toDateTime({unix_time})"
    return sql.replace("now()", moment).replace("today()", f"toDate({moment})")


def check_parameterized_reference(ch, q: dict) -> None:
    """Binding the parameterized reference's values back gives the reference result (at the same moment)."""
    sql, params = parameterized(q["sql"])
    assert set(m.group(1) for m in PLACEHOLDER.finditer(sql)) == set(params)
    unix_time = ch.execute("SELECT toUnixTimestamp(now())")[0][0]
    assert ch.execute(frozen(bind(sql, params), unix_time)) == ch.execute(frozen(q["sql"], unix_time))


def check_scripted_answers(questions: list, rules: list) -> None:
    from support.scripted_llm import validate_rules

    validate_rules(rules)
    assert len(rules) == len(questions)
    # each question is matched by its own rule first (rules are tried in order, match is a substring)
    for q in questions:
        first = next(r for r in rules if r["match"] in q["question"])
        assert first["match"] == q["question"]
