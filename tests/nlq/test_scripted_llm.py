"""The scripted OpenAI-compatible endpoint itself: the answers the ASK tests rely on."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from support.llm import ScriptedLLM, sql_answer

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "sql_answer",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "sql": {"type": "string"},
                "params": {"type": "object"},
                "explanation": {"type": "string"},
            },
            "required": ["sql", "params", "explanation"],
            "additionalProperties": False,
        },
    },
}


def post(llm: ScriptedLLM, body, path: str = "/v1/chat/completions", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", llm.port, timeout=30)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), raw


def chat(question: str, **extra) -> dict:
    return {
        "model": "qwen-test",
        "messages": [
            {"role": "system", "content": "You write ClickHouse SQL."},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": question},
        ],
        "temperature": 0,
        **extra,
    }


def test_completion_has_the_openai_shape(scripted_llm):
    answer = sql_answer("SELECT count() FROM analytics.events WHERE tenant_id = {t:String}", {"t": "acme"}, "count")
    scripted_llm.script([{"match": "how many events", "responses": [answer]}])

    status, ctype, raw = post(scripted_llm, chat("how many events did acme have?", response_format=SCHEMA_FORMAT))

    assert status == 200 and ctype == "application/json"
    body = json.loads(raw)
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion" and body["model"] == "qwen-test"
    assert isinstance(body["created"], int) and body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert json.loads(choice["message"]["content"]) == json.loads(answer)
    usage = body["usage"]
    # words over all four messages: 4 + 3 + 3 + 6
    assert usage["prompt_tokens"] == 16
    assert usage["completion_tokens"] == len(answer.split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_nth_match_gets_nth_response_and_the_last_repeats(scripted_llm):
    scripted_llm.script(
        [
            {"match": "revenue", "responses": ["first", "second"]},
            {"match": "", "responses": ["fallback"]},
        ]
    )
    contents = []
    for question in ["revenue 1", "something else", "revenue 2", "revenue 3", "REVENUE is case-sensitive"]:
        status, _, raw = post(scripted_llm, chat(question))
        assert status == 200
        contents.append(json.loads(raw)["choices"][0]["message"]["content"])
    assert contents == ["first", "fallback", "second", "second", "fallback"]


def test_only_the_last_user_message_is_matched(scripted_llm):
    scripted_llm.script([{"match": "an earlier question", "responses": ["should not match"]}])
    status, _, raw = post(scripted_llm, chat("the real question"))
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["code"] == "no_rule_matched" and error["type"] == "invalid_request_error"
    assert "the real question" in error["message"]


def test_content_parts_and_object_content(scripted_llm):
    scripted_llm.script([{"match": "parts", "responses": [{"content": {"sql": "SELECT 1", "params": {}}}]}])
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "in "}, {"type": "text", "text": "parts"}]}]}
    status, _, raw = post(scripted_llm, body)
    assert status == 200
    assert json.loads(json.loads(raw)["choices"][0]["message"]["content"]) == {"sql": "SELECT 1", "params": {}}


def test_scripted_error_status_and_raw_body(scripted_llm):
    scripted_llm.script(
        [
            {"match": "broken", "responses": [{"status": 500, "body": "not json at all"}, {"status": 503}, "recovered"]},
        ]
    )
    status, _, raw = post(scripted_llm, chat("broken"))
    assert (status, raw) == (500, b"not json at all")
    status, _, raw = post(scripted_llm, chat("broken"))
    assert status == 503 and json.loads(raw)["error"]["type"] == "server_error"
    status, _, raw = post(scripted_llm, chat("broken"))
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "recovered"


def test_delay_before_content(scripted_llm):
    scripted_llm.script([{"match": "slow", "responses": [{"delay_s": 1.0, "content": "late"}]}])
    t0 = time.monotonic()
    status, _, raw = post(scripted_llm, chat("slow"))
    elapsed = time.monotonic() - t0
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "late"
    assert 1.0 <= elapsed < 5.0


def test_finish_reason_and_usage_override(scripted_llm):
    usage = {"prompt_tokens": 1000, "completion_tokens": 7, "total_tokens": 1007}
    scripted_llm.script([{"match": "cut", "responses": [{"content": "{\"sql\": \"SEL", "finish_reason": "length", "usage": usage}]}])
    body = json.loads(post(scripted_llm, chat("cut"))[2])
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == usage


def test_requests_are_recorded_in_order_and_can_be_cleared(scripted_llm):
    scripted_llm.script([{"match": "", "responses": ["ok"]}])
    post(scripted_llm, chat("one", response_format=SCHEMA_FORMAT))
    post(scripted_llm, chat("two", max_tokens=64))
    bodies = scripted_llm.requests()
    assert [b["messages"][-1]["content"] for b in bodies] == ["one", "two"]
    assert bodies[0]["response_format"] == SCHEMA_FORMAT
    assert bodies[1]["max_tokens"] == 64
    full = scripted_llm.requests(full=True)
    assert [(r["method"], r["path"]) for r in full] == [("POST", "/v1/chat/completions")] * 2
    scripted_llm.clear_requests()
    assert scripted_llm.requests() == []


def test_models_listing(scripted_llm):
    conn = http.client.HTTPConnection("127.0.0.1", scripted_llm.port, timeout=10)
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200 and body["object"] == "list"
    assert body["data"][0]["object"] == "model" and body["data"][0]["id"]


def test_keep_alive_connection_serves_several_requests(scripted_llm):
    scripted_llm.script([{"match": "", "responses": ["a", "b", "c"]}])
    conn = http.client.HTTPConnection("127.0.0.1", scripted_llm.port, timeout=10)
    seen = []
    for q in ["x", "y", "z"]:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(chat(q)), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        seen.append(json.loads(resp.read())["choices"][0]["message"]["content"])
    conn.close()
    assert seen == ["a", "b", "c"]


def test_streaming_answer(scripted_llm):
    scripted_llm.script([{"match": "stream", "responses": ["streamed content"]}])
    status, ctype, raw = post(scripted_llm, chat("stream", stream=True, stream_options={"include_usage": True}))
    assert status == 200 and ctype == "text/event-stream"
    events = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "streamed content"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_bad_requests_get_clear_errors(scripted_llm):
    status, _, raw = post(scripted_llm, b"{not json")
    assert status == 400 and "not a JSON object" in json.loads(raw)["error"]["message"]
    status, _, raw = post(scripted_llm, {"model": "m", "messages": [{"role": "system", "content": "x"}]})
    assert status == 400 and "no user message" in json.loads(raw)["error"]["message"]
    with pytest.raises(RuntimeError, match="responses"):
        scripted_llm.script([{"match": "x"}])
    with pytest.raises(RuntimeError, match="unknown keys"):
        scripted_llm.script([{"match": "x", "responses": [{"contnet": "typo"}]}])


def test_api_key_is_required_when_configured(tmp_path):
    llm = ScriptedLLM(tmp_path, api_key="sk-test")
    llm.start()
    try:
        llm.script([{"match": "", "responses": ["ok"]}])
        status, _, raw = post(llm, chat("q"))
        assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
        status, _, raw = post(llm, chat("q"), headers={"Authorization": "Bearer sk-test"})
        assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "ok"
    finally:
        llm.stop()


def test_script_file_on_the_command_line(tmp_path):
    import subprocess
    import sys

    from support.llm import SCRIPT

    script = tmp_path / "rules.json"
    script.write_text(json.dumps({"rules": [{"match": "file", "responses": ["from file"]}]}))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0", "--script", str(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        llm = ScriptedLLM(tmp_path)
        llm.port = port
        status, _, raw = post(llm, chat("from a file"))
        assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "from file"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()
