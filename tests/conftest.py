"""Fixtures shared by Aurora's end-to-end tests.

- `clickhouse`: one private ClickHouse for the whole session (scripts/clickhouse.sh, free ports).
- `direct`: the Endpoint of that ClickHouse — the reference answer.
- `proxy`: the Endpoint of an aurora-proxy relaying to it (ClickHouse itself under AURORA_TEST_DIRECT=1).
- `start_proxy`: starts an extra proxy with a chosen upstream (fault tests; proxy-only).
- `db`: a fresh database for one test, dropped afterwards.
- `scripted_llm_server` / `scripted_llm`: the scripted OpenAI-compatible endpoint (support/llm.py), one per session;
  `scripted_llm` hands it to a test with an empty script and no recorded requests.
- `local_llm`: the real local model (llama-server + Qwen2.5-Coder 0.5B, scripts/llm.sh), one per session; skipped
  when scripts/setup.sh has not installed it.
- `analytics`: the fixtures/analytics dataset loaded into the session ClickHouse (once per session).
- `shop`: the same for the fixtures/shop dataset (an online shop's orders).

Every test asks the same thing through `proxy` and `direct` and compares what the user sees.
"""

from __future__ import annotations

import re
import uuid

import pytest
from clickhouse_driver import Client

from support import analytics as analytics_data
from support import shop as shop_data
from support.llm import LlamaServer, ScriptedLLM
from support.servers import DIRECT_MODE, ClickHouseServer, Endpoint, ProxyProcess


def pytest_collection_modifyitems(config, items):
    if not DIRECT_MODE:
        return
    skip = pytest.mark.skip(reason="needs the real aurora-proxy (AURORA_TEST_DIRECT=1)")
    for item in items:
        if "proxy_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory):
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def direct(clickhouse) -> Endpoint:
    return clickhouse.endpoint


@pytest.fixture(scope="session")
def proxy(clickhouse, tmp_path_factory) -> Endpoint:
    if DIRECT_MODE:
        yield clickhouse.endpoint
        return
    p = ProxyProcess(
        upstream_native=f"127.0.0.1:{clickhouse.tcp_port}",
        upstream_http=f"http://127.0.0.1:{clickhouse.http_port}",
        logdir=tmp_path_factory.mktemp("proxy"),
    )
    p.start()
    yield p.endpoint
    problem = p.stop()
    assert problem is None, problem


@pytest.fixture
def start_proxy(tmp_path):
    """Factory: start_proxy(upstream_native, upstream_http) -> ProxyProcess (stopped, and checked, at teardown)."""
    if DIRECT_MODE:
        pytest.skip("needs the real aurora-proxy (AURORA_TEST_DIRECT=1)")
    started = []

    def start(upstream_native: str, upstream_http: str, extra_args: tuple = ()) -> ProxyProcess:
        p = ProxyProcess(upstream_native, upstream_http, tmp_path, extra_args)
        p.start()
        started.append(p)
        return p

    yield start
    problems = [problem for p in started if (problem := p.stop()) is not None]
    assert not problems, "\n".join(problems)


@pytest.fixture
def db(request, direct):
    """A database of this test's own, created and dropped on the direct server."""
    name = re.sub(r"[^0-9a-zA-Z_]", "_", request.node.name)[:40]
    database = f"t_{name}_{uuid.uuid4().hex[:8]}"
    admin = Client(direct.host, port=direct.native_port)
    admin.execute(f"CREATE DATABASE {database}")
    yield database
    admin.execute(f"DROP DATABASE IF EXISTS {database}")
    admin.disconnect()


@pytest.fixture(scope="session")
def scripted_llm_server(tmp_path_factory) -> ScriptedLLM:
    llm = ScriptedLLM(tmp_path_factory.mktemp("scripted_llm"))
    llm.start()
    yield llm
    llm.stop()


@pytest.fixture
def scripted_llm(scripted_llm_server) -> ScriptedLLM:
    """The session's scripted LLM with an empty script and no recorded requests."""
    scripted_llm_server.reset()
    yield scripted_llm_server
    scripted_llm_server.reset()


@pytest.fixture(scope="session")
def analytics(direct) -> str:
    """Database `analytics` of fixtures/analytics, loaded once into the session ClickHouse; its name."""
    analytics_data.ensure_loaded(direct.host, direct.native_port)
    return "analytics"


@pytest.fixture(scope="session")
def shop(direct) -> str:
    """Database `shop` of fixtures/shop, loaded once into the session ClickHouse; its name."""
    shop_data.ensure_loaded(direct.host, direct.native_port)
    return "shop"


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory) -> LlamaServer:
    if not LlamaServer.installed("0.5b"):
        pytest.skip("llama-server or the 0.5B model is not installed (scripts/llm.sh install 0.5b)")
    server = LlamaServer(tmp_path_factory.mktemp("llama"), "0.5b")
    server.start()
    yield server
    server.stop()
