#!/usr/bin/env python3
"""Asks a running OpenAI-compatible server (llama-server started by scripts/llm.sh) a few analytics questions with the
`response_format` json_schema that ASK uses, and reports whether each answer is valid JSON of that schema, and how fast
the model was (llama-server's `timings`, when it sends them).

    python3 scripts/llm_check.py http://127.0.0.1:8090/v1 [--questions N] [--max-tokens 256]

Exit status 1 if any answer is not a JSON object with string `sql`, object `params` and string `explanation`.
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request

SCHEMA = {
    "type": "object",
    "properties": {
        "sql": {"type": "string"},
        "params": {"type": "object"},
        "explanation": {"type": "string"},
    },
    "required": ["sql", "params", "explanation"],
    "additionalProperties": False,
}

SYSTEM = """You translate questions into one ClickHouse SELECT query.
Table analytics.events(event_id UUID, timestamp DateTime, event_type String, tenant_id String, user_id String,
revenue Float64, payload String, schema_version UInt16); event_type is one of page_view, signup, add_to_cart,
purchase, refund. Table analytics.tenants(tenant_id String, name String, plan String, country String, currency String,
created_at DateTime).
Never write literal values into the SQL: use placeholders like {tenant:String} or {day:Date} and put the values in
"params". Answer with a JSON object {"sql": ..., "params": {...}, "explanation": ...}."""

QUESTIONS = [
    "How many purchase events did the tenant acme have in October 2026?",
    "What was the total revenue of globex on 2026-11-03?",
    "Which 3 tenants had the most page views in November 2026?",
    "How many tenants are on the enterprise plan?",
]


def ask(base_url: str, question: str, max_tokens: int) -> dict:
    body = {
        "model": "local",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "response_format": {"type": "json_schema", "json_schema": {"name": "aurora_query", "strict": True, "schema": SCHEMA}},
    }
    req = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=600) as resp:
        answer = json.loads(resp.read())
    answer["_wall_s"] = time.monotonic() - t0
    return answer


def valid(content: str) -> str | None:
    """None if content is a JSON object of the schema, else what is wrong."""
    try:
        value = json.loads(content)
    except json.JSONDecodeError as e:
        return f"not JSON: {e}"
    if not isinstance(value, dict):
        return "not an object"
    if set(value) != {"sql", "params", "explanation"}:
        return f"keys {sorted(value)}"
    if not isinstance(value["sql"], str) or not isinstance(value["params"], dict) or not isinstance(value["explanation"], str):
        return "wrong value types"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    failures = 0
    gen_tokens = gen_s = 0.0
    for question in QUESTIONS[: args.questions]:
        answer = ask(args.base_url, question, args.max_tokens)
        content = answer["choices"][0]["message"]["content"]
        problem = valid(content)
        failures += problem is not None
        usage = answer.get("usage", {})
        timings = answer.get("timings", {})
        if timings:
            gen_tokens += timings.get("predicted_n", 0)
            gen_s += timings.get("predicted_ms", 0) / 1000
        print(
            json.dumps(
                {
                    "question": question,
                    "valid_json_schema": problem is None,
                    "problem": problem,
                    "content": content,
                    "prompt_tokens": usage.get("prompt_tokens"),
                    "completion_tokens": usage.get("completion_tokens"),
                    "prompt_tokens_per_s": round(timings["prompt_per_second"], 2) if "prompt_per_second" in timings else None,
                    "gen_tokens_per_s": round(timings["predicted_per_second"], 2) if "predicted_per_second" in timings else None,
                    "wall_s": round(answer["_wall_s"], 2),
                    "finish_reason": answer["choices"][0].get("finish_reason"),
                }
            )
        )
    summary = {"answers": args.questions, "invalid": failures}
    if gen_s:
        summary["gen_tokens_per_s_overall"] = round(gen_tokens / gen_s, 2)
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
