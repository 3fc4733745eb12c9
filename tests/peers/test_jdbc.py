"""The ClickHouse JDBC driver that BI tools (DBeaver, Metabase) use, against aurora-proxy and ClickHouse directly.

The tests themselves are Java (tests/jdbc, run by scripts/jdbc-peers.sh): DatabaseMetaData as the tools call it, a
prepared statement, a batch insert read back, every common 18.16 type through getObject/getString, Statement.cancel()
of a long query, error codes, and `SELECT * FROM ask('…')` through an aurora-proxy whose model is scripted here.
This wrapper starts nothing of its own beyond the fixtures and fails with Maven's output when a Java test fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from clickhouse_driver import Client

from support.servers import DIRECT_MODE, REPO_ROOT, scripted_ask_proxy

SCRIPT = REPO_ROOT / "scripts" / "jdbc-peers.sh"
REPORTS = REPO_ROOT / "tests" / "jdbc" / "target" / "surefire-reports"
QUESTION = "revenue per tenant for the jdbc peers"


@pytest.fixture(scope="module")
def jdbc_ask_proxy(clickhouse, scripted_llm_server, tmp_path_factory):
    if DIRECT_MODE:
        yield None
        return
    yield from scripted_ask_proxy(clickhouse, scripted_llm_server, tmp_path_factory.mktemp("jdbc-ask-proxy"))


def surefire_output() -> str:
    if not REPORTS.is_dir():
        return "(no surefire reports)"
    return "\n".join(p.read_text(errors="replace")[-6000:] for p in sorted(REPORTS.glob("*.txt")))


@pytest.mark.timeout(400)
def test_jdbc_driver_proxy_vs_direct(proxy, direct, db, jdbc_ask_proxy, scripted_llm):
    admin = Client(direct.host, port=direct.native_port)
    admin.execute(f"CREATE TABLE {db}.sales (tenant String, revenue Float64) ENGINE = MergeTree ORDER BY tenant")
    admin.execute(f"INSERT INTO {db}.sales VALUES", [("acme", 10.5), ("globex", 3.0), ("acme", 2.0), ("initech", 7.25)])
    admin.disconnect()
    sql = f"SELECT tenant, sum(revenue) AS revenue FROM {db}.sales GROUP BY tenant ORDER BY tenant"
    answer = {"content": {"sql": sql, "params": {}, "explanation": "sum of revenue per tenant"}}
    scripted_llm.script([{"match": QUESTION, "responses": [answer, answer]}])

    env = dict(os.environ,
               AURORA_JDBC_DIRECT=f"{direct.host}:{direct.http_port}",
               AURORA_JDBC_PROXY=f"{proxy.host}:{proxy.http_port}")
    if jdbc_ask_proxy is not None:
        env.update(AURORA_JDBC_ASK=f"{jdbc_ask_proxy.host}:{jdbc_ask_proxy.http_port}",
                   AURORA_JDBC_ASK_QUESTION=QUESTION, AURORA_JDBC_ASK_SQL=sql)
    run = subprocess.run([str(SCRIPT), "test"], env=env, capture_output=True, text=True, timeout=380)
    output = run.stdout[-8000:] + run.stderr[-4000:]
    assert run.returncode == 0, f"scripts/jdbc-peers.sh test failed ({run.returncode}):\n{output}\n{surefire_output()}"
    summary = surefire_output()
    assert "Failures: 0, Errors: 0" in summary, summary
    if jdbc_ask_proxy is not None:
        # ask() really went to the model, and the Java test was not skipped.
        assert "Skipped: 0" in summary, summary
        assert any(QUESTION in str(r) for r in scripted_llm.requests()), scripted_llm.requests()
