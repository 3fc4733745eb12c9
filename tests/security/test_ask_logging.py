"""ASK is answered only to users ClickHouse accepts, and no client can grow the proxy's log with it.

The probe's case: over HTTP, ASK was answered ("no model configured") before the credentials were checked,
and a failed ASK logged the whole question at INFO, so anyone could add 10 MB of log per 10 MB sent.
"""

from __future__ import annotations

import base64

import pytest


pytestmark = pytest.mark.proxy_only

QUESTION_BYTES = 512 << 10
REQUESTS = 30


def ask(port: int, question: str, user: str, password: str) -> tuple[int, dict, bytes]:
    import http.client

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/", body=f"ASK '{question}'".encode(), headers={"Authorization": f"Basic {auth}"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def proxy_without_model(clickhouse, start_proxy):
    return start_proxy(f"127.0.0.1:{clickhouse.tcp_port}", f"http://127.0.0.1:{clickhouse.http_port}")


def test_credentials_come_before_anything_else(proxy_without_model):
    status, headers, body = ask(proxy_without_model.http_port, "how many events", "alice", "wrong")
    # ClickHouse's own refusal (18.16: 193 wrong password; newer servers 516), not Aurora's "no model".
    assert headers.get("x-clickhouse-exception-code") in ("193", "516"), (status, headers, body)
    assert b"LLM" not in body, body
    status, headers, body = ask(proxy_without_model.http_port, "how many events", "nobody", "x")
    assert headers.get("x-clickhouse-exception-code") in ("192", "516"), (status, headers, body)
    # A user ClickHouse accepts gets to Aurora's answer.
    status, headers, body = ask(proxy_without_model.http_port, "how many events", "alice", "alice-secret")
    assert headers.get("x-clickhouse-exception-code") == "48", (status, headers, body)


def test_questions_do_not_flood_the_log(proxy_without_model):
    port = proxy_without_model.http_port
    log = proxy_without_model.log_path
    before = log.stat().st_size
    question = "q" * QUESTION_BYTES
    for i in range(REQUESTS):
        # Half refused by ClickHouse, half accepted and failing in Aurora (no model): both log paths.
        user, password = ("alice", "alice-secret") if i % 2 else ("alice", f"wrong{i}")
        status, _, _ = ask(port, question, user, password)
        assert status >= 400
    sent = REQUESTS * QUESTION_BYTES
    growth = log.stat().st_size - before
    # A few clipped lines a minute per user: bounded, whatever was sent (15 MB here).
    assert growth < 64 << 10, f"log grew by {growth} bytes for {sent} bytes of questions"
    assert "q" * 2048 not in log.read_text(errors="replace")
    assert proxy_without_model.alive()


def test_native_ask_failures_are_clipped_too(proxy_without_model):
    """The same on the native side: a long question in a failing ASK is not copied into the log."""
    from support.driver import connect

    log = proxy_without_model.log_path
    before = log.stat().st_size
    client = connect(proxy_without_model.endpoint, user="alice", password="alice-secret")
    for _ in range(5):
        with pytest.raises(Exception) as info:
            client.execute("ASK '" + "n" * (256 << 10) + "'")
        assert getattr(info.value, "code", None) == 48
    client.disconnect()
    assert log.stat().st_size - before < 32 << 10
    assert "n" * 2048 not in log.read_text(errors="replace")
