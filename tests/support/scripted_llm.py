#!/usr/bin/env python3
"""A deterministic OpenAI-compatible chat-completions server for tests (stdlib only).

    python3 scripted_llm.py --port P [--host 127.0.0.1] [--script FILE] [--api-key KEY]

`--port 0` lets the kernel pick a port. When the server listens it prints one line on stdout:
`scripted-llm listening on http://127.0.0.1:<port>` (tests read the port from it).

Endpoints (OpenAI shape, as the `async-openai` Rust client and the `openai` Python client expect):

- `POST /v1/chat/completions`: the answer is chosen by the rules of the script (below). The body is
  `{"id", "object": "chat.completion", "created", "model", "system_fingerprint",
    "choices": [{"index": 0, "message": {"role": "assistant", "content", "refusal": null},
                 "logprobs": null, "finish_reason"}],
    "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}`.
  `response_format` (`json_object` or `json_schema`), `tools`, `temperature`, `max_tokens`… are accepted and
  recorded, not interpreted: the script decides the content. `"stream": true` is answered as server-sent events
  (`chat.completion.chunk` objects, then `data: [DONE]`), the content in pieces of 16 characters.
  Token counts are deterministic: prompt_tokens = whitespace-separated words over all messages,
  completion_tokens = words of the content.
- `GET /v1/models`: `{"object": "list", "data": [{"id": "scripted", "object": "model", ...}]}`.
- `PUT /_script`: replace the rules (body: a rules list, or `{"rules": [...]}`); resets the per-rule counters.
- `GET /_requests`: JSON list of every request body received on /v1/* (parsed JSON; a body that is not JSON is
  kept as a string), in order. `GET /_requests?full=1`: a list of `{"method", "path", "headers", "body"}`.
- `DELETE /_requests`: forget them.
- `GET /health`: `{"status": "ok"}`.

Script: a list of rules, tried in order; the first whose `match` is a substring of the LAST user message wins
(message content as a string, or the concatenated `text` parts of a content list; `""` matches everything):

    [{"match": "top 5 tenants", "responses": ["<content 1>", "<content 2>"]}, ...]

The n-th request matching a rule gets its n-th response; the last one repeats. A response is either
- a string: the assistant message content, or
- an object with any of:
  `content`       the message content; a non-string value (e.g. `{"sql": ..., "params": ...}`) is sent as its JSON text
                  (absent: empty content);
  `delay_s`       seconds to wait before answering (to test client timeouts);
  `status`        an HTTP status to answer with instead of a completion, with
  `body`          its body: a string is sent verbatim (so malformed bodies can be tested), another value as JSON;
                  absent: an OpenAI error object `{"error": {"message", "type", "param", "code"}}`;
  `finish_reason` instead of "stop" (e.g. "length");
  `usage`         an object replacing the computed token counts.

No rule matches → HTTP 400 with an OpenAI error object (type `invalid_request_error`, code `no_rule_matched`) whose
message quotes the last user message. With `--api-key KEY`, a request to /v1/* without `Authorization: Bearer KEY` gets
401 with an OpenAI error object (code `invalid_api_key`).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


def openai_error(message: str, type_: str, code: Optional[str], param: Optional[str] = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def last_user_message(body: dict) -> Optional[str]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return None


def word_count(text: str) -> int:
    return len(text.split())


class Script:
    """The rules and how often each has matched; shared by the handler threads."""

    def __init__(self, rules: list):
        self._lock = threading.Lock()
        self.replace(rules)

    def replace(self, rules: Any) -> None:
        if isinstance(rules, dict) and "rules" in rules:
            rules = rules["rules"]
        validate_rules(rules)
        with self._lock:
            self._rules = rules
            self._hits = [0] * len(rules)

    def pick(self, user_message: str) -> Optional[Any]:
        """The response for this request, counting the hit; None when no rule matches."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule["match"] in user_message:
                    responses = rule["responses"]
                    response = responses[min(self._hits[i], len(responses) - 1)]
                    self._hits[i] += 1
                    return response
        return None


def validate_rules(rules: Any) -> None:
    if not isinstance(rules, list):
        raise ValueError("the script must be a list of rules (or {\"rules\": [...]})")
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise ValueError(f"rule {i}: not an object")
        unknown = set(rule) - {"match", "responses"}
        if unknown:
            raise ValueError(f"rule {i}: unknown keys {sorted(unknown)}")
        if not isinstance(rule.get("match"), str):
            raise ValueError(f"rule {i}: 'match' must be a string")
        responses = rule.get("responses")
        if not isinstance(responses, list) or not responses:
            raise ValueError(f"rule {i}: 'responses' must be a non-empty list")
        for j, response in enumerate(responses):
            if isinstance(response, str):
                continue
            if not isinstance(response, dict):
                raise ValueError(f"rule {i} response {j}: a string or an object")
            unknown = set(response) - {"content", "delay_s", "status", "body", "finish_reason", "usage"}
            if unknown:
                raise ValueError(f"rule {i} response {j}: unknown keys {sorted(unknown)}")
            if "delay_s" in response and not isinstance(response["delay_s"], (int, float)):
                raise ValueError(f"rule {i} response {j}: 'delay_s' must be a number")
            if "status" in response and not isinstance(response["status"], int):
                raise ValueError(f"rule {i} response {j}: 'status' must be an integer")


class State:
    def __init__(self, rules: list, api_key: Optional[str]):
        self.script = Script(rules)
        self.api_key = api_key
        self.requests: list = []
        self.requests_lock = threading.Lock()
        self.counter = 0

    def record(self, method: str, path: str, headers: dict, body: Any) -> int:
        with self.requests_lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            self.counter += 1
            return self.counter


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-llm/1"
    state: State  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    # --- plumbing ---------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self) -> bool:
        if self.state.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.state.api_key}":
            return True
        self.send(401, openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        return False

    # --- methods ----------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/health":
            self.send(200, {"status": "ok"})
        elif url.path == "/_requests":
            full = urllib.parse.parse_qs(url.query).get("full") == ["1"]
            with self.state.requests_lock:
                items = list(self.state.requests)
            self.send(200, items if full else [r["body"] for r in items])
        elif url.path in ("/v1/models", "/models"):
            self.read_body()
            self.state.record("GET", url.path, dict(self.headers), None)
            if self.authorized():
                model = {"id": "scripted", "object": "model", "created": 0, "owned_by": "aurora-tests"}
                self.send(200, {"object": "list", "data": [model]})
        else:
            self.send(404, openai_error(f"Unknown path {url.path}", "invalid_request_error", "not_found"))

    def do_DELETE(self) -> None:  # noqa: N802
        if urllib.parse.urlsplit(self.path).path == "/_requests":
            with self.state.requests_lock:
                self.state.requests.clear()
            self.send(200, {"ok": True})
        else:
            self.send(404, openai_error("Unknown path", "invalid_request_error", "not_found"))

    def do_PUT(self) -> None:  # noqa: N802
        raw = self.read_body()
        if urllib.parse.urlsplit(self.path).path != "/_script":
            self.send(404, openai_error("Unknown path", "invalid_request_error", "not_found"))
            return
        try:
            self.state.script.replace(json.loads(raw))
        except (ValueError, json.JSONDecodeError) as e:
            self.send(400, {"error": f"bad script: {e}"})
            return
        self.send(200, {"ok": True})

    def do_POST(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        raw = self.read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw.decode("utf-8", "replace")
        seq = self.state.record("POST", path, dict(self.headers), body)
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.send(404, openai_error(f"Unknown path {path}", "invalid_request_error", "not_found"))
            return
        if not self.authorized():
            return
        if not isinstance(body, dict):
            self.send(400, openai_error("The request body is not a JSON object.", "invalid_request_error", None))
            return
        user = last_user_message(body)
        if user is None:
            self.send(400, openai_error("The request has no user message.", "invalid_request_error", None, "messages"))
            return
        response = self.state.script.pick(user)
        if response is None:
            message = f"scripted-llm: no rule matches the last user message: {user!r}"
            self.send(400, openai_error(message, "invalid_request_error", "no_rule_matched", "messages"))
            return
        self.answer(body, response, seq)

    def answer(self, request: dict, response: Any, seq: int) -> None:
        if isinstance(response, str):
            response = {"content": response}
        if response.get("delay_s"):
            time.sleep(float(response["delay_s"]))
        if "status" in response:
            status = response["status"]
            if "body" in response:
                self.send(status, response["body"])
            else:
                self.send(status, openai_error(f"scripted error {status}", "server_error", None))
            return
        content = response.get("content", "")
        if not isinstance(content, str):
            content = json.dumps(content)
        prompt_tokens = sum(
            word_count(message_text(m.get("content")))
            for m in request.get("messages", [])
            if isinstance(m, dict)
        )
        completion_tokens = word_count(content)
        usage = response.get("usage") or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        model = request.get("model") if isinstance(request.get("model"), str) else "scripted"
        finish_reason = response.get("finish_reason", "stop")
        ident = f"chatcmpl-scripted-{seq}"
        created = int(time.time())
        if request.get("stream") is True:
            self.stream(ident, created, model, content, finish_reason, usage, request)
            return
        self.send(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "scripted",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage,
            },
        )

    def stream(self, ident, created, model, content, finish_reason, usage, request) -> None:
        def chunk(delta: dict, finish: Optional[str], with_usage: bool = False) -> bytes:
            obj = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "scripted",
                "choices": [] if with_usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if with_usage:
                obj["usage"] = usage
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        # The content in pieces of 16 characters, as a model server sends tokens.
        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": content[i : i + 16]}, None) for i in range(0, len(content), 16)]
        events.append(chunk({}, finish_reason))
        options = request.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            events.append(chunk({}, None, with_usage=True))
        events.append(b"data: [DONE]\n\n")
        data = b"".join(events)
        self.send(200, data, content_type="text/event-stream")


def make_server(host: str, port: int, rules: list, api_key: Optional[str] = None) -> ThreadingHTTPServer:
    handler = type("ScriptedHandler", (Handler,), {"state": State(rules, api_key)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="Deterministic OpenAI-compatible chat server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--script", help="JSON file with the rules (a list, or {\"rules\": [...]})")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1/*")
    args = parser.parse_args(argv)
    rules: Any = []
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            rules = json.load(f)
    try:
        server = make_server(args.host, args.port, rules, args.api_key)
    except ValueError as e:
        print(f"scripted-llm: bad script: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"scripted-llm listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
