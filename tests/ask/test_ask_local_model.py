"""ASK with a real local model (Qwen2.5-Coder 0.5B, llama-server built by scripts/llm.sh) and the real embedding
model, over the fixtures/analytics data. What a small model writes is not always right (aurora-eval measures how
often it is); what this test asserts is the structure every answer must have: the model's reply is the JSON the
schema asks for, the SQL it holds passes validation, and ClickHouse runs it — through the HTTP JSON API and the
native protocol."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from support import analytics as fixture
from support.driver import connect
from support.servers import DIRECT_MODE, ProxyProcess

pytestmark = pytest.mark.proxy_only


def embedding_args() -> tuple:
    model_dir = os.environ.get("AURORA_EMBED_MODEL_DIR")
    if not model_dir or not os.environ.get("ORT_DYLIB_PATH"):
        return ()
    return ("--embed-model-dir", model_dir)


@pytest.fixture(scope="module")
def model_proxy(clickhouse, analytics, local_llm, tmp_path_factory):
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    p = ProxyProcess(
        f"127.0.0.1:{clickhouse.tcp_port}",
        f"http://127.0.0.1:{clickhouse.http_port}",
        tmp_path_factory.mktemp("model-proxy"),
        (
            "--llm-base-url", local_llm.base_url,
            "--llm-model", "qwen2.5-coder-0.5b",
            "--llm-timeout", "600s",
            "--semantic-file", str(fixture.SEMANTIC_FILE),
            *embedding_args(),
        ),
    )
    p.start()
    yield p.endpoint
    problem = p.stop()
    assert problem is None, problem


@pytest.mark.timeout(1500)
def test_a_real_model_answers_with_sql_that_validates_and_runs(model_proxy):
    question = "How many tenants are there?"
    body = json.dumps({"question": question}).encode()
    request = urllib.request.Request(f"{model_proxy.http_url}/ask", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=1200) as r:
        assert r.status == 200
        doc = json.loads(r.read())
    assert doc["sql"].lstrip().upper().startswith("SELECT"), doc
    assert "analytics." in doc["sql"] and isinstance(doc["params"], dict)
    assert doc["columns"] and len(doc["rows"]) >= 1, doc

    # The same question over the native protocol comes from the exact cache: same SQL, same rows, no model call.
    rows = connect(model_proxy, send_receive_timeout=1200).execute(f"ASK '{question}'")
    assert [list(map(str, r)) for r in rows] == [list(map(str, r)) for r in doc["rows"]]
    metrics = urllib.request.urlopen(f"http://{model_proxy.host}:{model_proxy.metrics_port}/metrics").read().decode()
    assert 'aurora_ask_cache_hits_total{cache="exact"} 1' in metrics
    assert 'aurora_ask_total{outcome="ok"} 2' in metrics
