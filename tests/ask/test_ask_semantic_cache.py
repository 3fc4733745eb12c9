"""The semantic cache with the real embedding model: a question phrased a little differently reuses the earlier
question's query (no model call); a different question does not. Skipped without the embedding assets, unless
AURORA_REQUIRE_EMBEDDINGS is set (scripts/test.sh sets it), which makes their absence a failure."""

from __future__ import annotations

import os
import urllib.request

import pytest

from support.driver import connect
from support.servers import DIRECT_MODE, ProxyProcess

pytestmark = pytest.mark.proxy_only


def embedding_args() -> tuple:
    model_dir, ort = os.environ.get("AURORA_EMBED_MODEL_DIR"), os.environ.get("ORT_DYLIB_PATH")
    if model_dir and ort:
        return ("--embed-model-dir", model_dir, "--cache-dir", "{cache}")
    if os.environ.get("AURORA_REQUIRE_EMBEDDINGS"):
        pytest.fail("AURORA_REQUIRE_EMBEDDINGS is set but AURORA_EMBED_MODEL_DIR / ORT_DYLIB_PATH are not")
    pytest.skip("no embedding model (scripts/embeddings.sh)")


@pytest.fixture
def embedding_proxy(clickhouse, analytics, scripted_llm, tmp_path):
    if DIRECT_MODE:
        pytest.skip("ASK is Aurora's own")
    args = tuple(a.replace("{cache}", str(tmp_path / "cache")) for a in embedding_args())
    p = ProxyProcess(
        f"127.0.0.1:{clickhouse.tcp_port}",
        f"http://127.0.0.1:{clickhouse.http_port}",
        tmp_path,
        ("--llm-base-url", scripted_llm.base_url, "--llm-model", "scripted", *args),
    )
    p.start()
    yield p
    problem = p.stop()
    assert problem is None, problem


def semantic_hits(endpoint) -> float:
    text = urllib.request.urlopen(f"http://{endpoint.host}:{endpoint.metrics_port}/metrics").read().decode()
    line = next(l for l in text.splitlines() if l.startswith('aurora_ask_cache_hits_total{cache="semantic"}'))
    return float(line.split()[-1])


def test_a_rephrased_question_reuses_the_query(embedding_proxy, scripted_llm, tmp_path):
    endpoint = embedding_proxy.endpoint
    counted = {"sql": "SELECT count() AS n FROM analytics.tenants", "params": {}, "explanation": "tenants"}
    users = {"sql": "SELECT count() AS n FROM analytics.users", "params": {}, "explanation": "users"}
    scripted_llm.script(
        [
            {"match": "Question: How many users", "responses": [{"content": users}]},
            {"match": "", "responses": [{"content": counted}]},
        ]
    )
    client = connect(endpoint)
    assert client.execute("ASK 'How many tenants are there in total?'") == [(8,)]
    assert client.execute("ASK 'how many tenants are there in total'") == [(8,)]  # exact (normalised)
    assert client.execute("ASK 'How many tenants exist in total?'") == [(8,)]  # rephrased: semantic
    assert semantic_hits(endpoint) == 1
    assert len(scripted_llm.requests()) == 1
    # A different question is not answered from the cache.
    assert client.execute("ASK 'How many users are there in total?'") == [(3000,)]
    assert len(scripted_llm.requests()) == 2
    # Vectors persisted for the next start.
    assert any(p.name.startswith("embeddings-") for p in (tmp_path / "cache").iterdir())
