"""The real local model answers the structured request ASK sends (json_schema response_format) with valid JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.servers import REPO_ROOT


@pytest.mark.timeout(600)
def test_local_model_answers_json_schema(local_llm):
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "llm_check.py"), local_llm.base_url, "--questions", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0, out.stdout + out.stderr
    answers, summary = lines[:-1], lines[-1]
    assert summary == {**summary, "answers": 2, "invalid": 0}
    for answer in answers:
        value = json.loads(answer["content"])
        assert value["sql"].lstrip().upper().startswith("SELECT"), value
        assert answer["completion_tokens"] > 0
