"""`aurora-eval` end to end, deterministically: the scripted model answers every question of
fixtures/analytics/questions.yaml with its reference query (parameterized), so the pipeline must score every
question correct — which checks the command's plumbing (catalog, binding, execution, comparison) on the real
data. A model that answers wrongly must score it as wrong, not as right."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support import analytics as fixture
from support.servers import REPO_ROOT

pytestmark = pytest.mark.proxy_only


def eval_binary() -> Path:
    explicit = os.environ.get("AURORA_EVAL_BIN")
    if explicit:
        return Path(explicit)
    for profile in ("release", "debug"):
        candidate = REPO_ROOT / "target" / profile / "aurora-eval"
        if candidate.exists():
            return candidate
    pytest.fail("no aurora-eval binary: cargo build --release -p nlq")


def run_eval(clickhouse, llm, tmp_path, *extra) -> tuple:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            str(eval_binary()),
            "--questions", str(fixture.QUESTIONS_FILE),
            "--semantic-file", str(fixture.SEMANTIC_FILE),
            "--clickhouse-url", f"http://127.0.0.1:{clickhouse.http_port}",
            "--llm-base-url", llm.base_url,
            "--llm-model", "scripted",
            "--llm-timeout", "10s",
            "--json", str(report),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(report.read_text())


def test_reference_answers_score_every_question_correct(clickhouse, analytics, scripted_llm, tmp_path):
    scripted_llm.script(fixture.scripted_answers())
    stdout, report = run_eval(clickhouse, scripted_llm, tmp_path, "--baseline")
    n = len(fixture.questions())
    assert n >= 40
    assert f"pipeline: execution accuracy {n}/{n} (100%), valid {n}/{n} (100%)" in stdout, stdout
    assert f"baseline: execution accuracy {n}/{n} (100%)" in stdout, stdout
    pipeline = report["pipeline"]["outcomes"]
    assert len(pipeline) == n and all(o["correct"] for o in pipeline), [o for o in pipeline if not o["correct"]]
    # Questions alternate: pipeline prompt, then the baseline's bare schema (no semantic notes, no examples).
    prompts = [json.dumps(r["messages"]) for r in scripted_llm.requests()]
    assert len(prompts) == 2 * n
    assert all("Examples:" in p for p in prompts[0::2] if "Examples" in p) and any("Examples:" in p for p in prompts[0::2])
    assert not any("Examples:" in p for p in prompts[1::2])


def test_wrong_answers_are_scored_wrong(clickhouse, analytics, scripted_llm, tmp_path):
    questions = fixture.questions()[:3]
    wrong = {"sql": "SELECT count() + 1 FROM analytics.events", "params": {}, "explanation": "off by one"}
    scripted_llm.script([{"match": "", "responses": [{"content": wrong}]}])
    stdout, report = run_eval(clickhouse, scripted_llm, tmp_path, "--ids", ",".join(q["id"] for q in questions))
    assert "pipeline: execution accuracy 0/3 (0%), valid 3/3 (100%)" in stdout, stdout
    assert [o["correct"] for o in report["pipeline"]["outcomes"]] == [False, False, False]


def test_an_answer_that_finds_nothing_is_repaired_only_with_repair_empty(clickhouse, analytics, scripted_llm, tmp_path):
    """q05 counts refunds; the model first writes the value as 'Refund', which matches no row, so the count is 0.
    With --repair-empty the engine runs the answer first, tells the model it returned 0, and the model's second
    answer is kept; without the flag the count of nothing is what the user gets."""
    reference = next(q for q in fixture.questions() if q["id"] == "q05")["sql"]
    misspelt = reference.replace("'refund'", "'Refund'")
    assert misspelt != reference
    script = [
        {"match": "That query ran but returned 0.", "responses": [{"content": {"sql": reference, "explanation": "refunds"}}]},
        {"match": "", "responses": [{"content": {"sql": misspelt, "explanation": "refunds"}}]},
    ]
    scripted_llm.script(script)
    stdout, report = run_eval(clickhouse, scripted_llm, tmp_path, "--ids", "q05")
    assert "pipeline: execution accuracy 0/1 (0%), valid 1/1 (100%)" in stdout, stdout
    assert len(scripted_llm.requests()) == 1

    scripted_llm.reset()
    scripted_llm.script(script)
    stdout, report = run_eval(clickhouse, scripted_llm, tmp_path, "--ids", "q05", "--repair-empty")
    assert "pipeline: execution accuracy 1/1 (100%), valid 1/1 (100%)" in stdout, stdout
    requests = scripted_llm.requests()
    assert len(requests) == 2, len(requests)
    assert "If nothing is the right answer" in json.dumps(requests[1]["messages"][-1])
