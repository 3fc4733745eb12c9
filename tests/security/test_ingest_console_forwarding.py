"""The console's way to aurora-ingest (`/ui/api/ingest/*` on the proxy) against a real daemon with a token: any user
ClickHouse accepts may read the pipelines' status, only the proxy's `pipeline_admins` may change them, and the
proxy sends the daemon's token (without it the daemon refuses the proxy, and the console says why).

On the main of 2026-12-02 any ClickHouse user that was not read-only could connect a pipeline through the console,
and so reach the daemon's `kafka_options` (issue 11, item 1).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

pytestmark = [pytest.mark.proxy_only, pytest.mark.usefixtures("ingest_binary_present")]

ADMIN = {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "alice-secret"}
READER = {"X-ClickHouse-User": "reader", "X-ClickHouse-Key": "reader-secret"}


def console_call(port: int, method: str, path: str, headers: dict, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ui/api/ingest{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def daemon(db, start_ingest):
    return start_ingest([])


@pytest.fixture
def console(start_proxy, clickhouse, daemon):
    return start_proxy(
        f"127.0.0.1:{clickhouse.tcp_port}", f"http://127.0.0.1:{clickhouse.http_port}",
        ("--ingest-api-url", daemon.api, "--ingest-api-token-file", str(daemon.token_path),
         "--pipeline-admins", "alice"),
    )


def test_reading_is_for_every_user_changing_for_pipeline_admins_only(console, daemon, topic, db):
    port = console.http_port
    spec = {"name": "console", "topics": [topic], "table": f"{db}.console", "batch_max_wait": "200ms"}

    assert console_call(port, "GET", "/pipelines", READER) == (200, {"pipelines": []})
    for method, path, body in (("POST", "/pipelines", spec), ("DELETE", "/pipelines/console", None)):
        status, answer = console_call(port, method, path, READER, body)
        assert status == 403, answer
        assert answer["error"]["code"] == 497 and "pipeline_admins" in answer["error"]["message"], answer
    assert daemon.pipelines_view() == {}, "a refused request never reaches the daemon"

    status, answer = console_call(port, "POST", "/pipelines", {**ADMIN, "X-ClickHouse-Key": "wrong"}, spec)
    assert status == 403 and answer["error"]["code"] == 193, answer  # ClickHouse 18.16: WRONG_PASSWORD
    status, answer = console_call(port, "POST", "/pipelines", {}, spec)
    assert status == 403, answer

    status, answer = console_call(port, "POST", "/pipelines", ADMIN, spec)
    assert status == 201, answer
    assert "console" in daemon.pipelines_view()
    status, answer = console_call(port, "GET", "/pipelines", READER)
    assert status == 200 and [p["name"] for p in answer["pipelines"]] == ["console"], answer
    assert console_call(port, "DELETE", "/pipelines/console", ADMIN)[0] == 200
    assert daemon.pipelines_view() == {}


def test_an_admin_through_the_console_is_still_an_api_caller(console, daemon, topic, db, tmp_path):
    """The daemon's own checks apply to what the console forwards: no code-loading librdkafka properties."""
    spec = {"name": "evil", "topics": [topic], "table": f"{db}.evil",
            "kafka_options": {"plugin.library.paths": str(tmp_path / "lib.so")}}
    status, answer = console_call(console.http_port, "POST", "/pipelines", ADMIN, spec)
    assert status == 400, answer
    assert "plugin.library.paths" in answer["error"], answer
    assert daemon.pipelines_view() == {}


def test_without_the_daemon_token_the_console_says_what_to_configure(start_proxy, clickhouse, daemon):
    proxy = start_proxy(
        f"127.0.0.1:{clickhouse.tcp_port}", f"http://127.0.0.1:{clickhouse.http_port}",
        ("--ingest-api-url", daemon.api, "--pipeline-admins", "alice"),
    )
    status, answer = console_call(proxy.http_port, "GET", "/pipelines", ADMIN)
    assert status == 502, answer
    assert answer["ingest"] == "unauthorized", answer
    assert "ingest_api_token_env" in answer["error"]["message"], answer
