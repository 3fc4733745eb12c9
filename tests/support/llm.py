"""The scripted OpenAI-compatible endpoint (support/scripted_llm.py) as a process the tests control.

    llm = ScriptedLLM(logdir); llm.start()
    llm.script([{"match": "signups", "responses": [{"content": {"sql": "...", "params": {}, "explanation": ""}}]}])
    ... point aurora-proxy at llm.base_url (http://127.0.0.1:<port>/v1) ...
    llm.requests()          # the chat-completion bodies it received, in order
    llm.stop()

Fixtures (tests/conftest.py): `scripted_llm_server` (one per session) and `scripted_llm` (the same server with an empty
script and no recorded requests at the start of each test).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

SCRIPT = Path(__file__).resolve().parent / "scripted_llm.py"


class ScriptedLLM:
    def __init__(self, logdir: Path, api_key: Optional[str] = None):
        self.logdir = logdir
        self.api_key = api_key
        self.port: Optional[int] = None
        self._proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as its base URL."""
        return f"{self.url}/v1"

    def start(self, timeout_s: float = 10.0) -> None:
        args = [sys.executable, str(SCRIPT), "--port", "0"]
        if self.api_key:
            args += ["--api-key", self.api_key]
        self._stderr = open(self.logdir / "scripted_llm.err", "wb")
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        line = self._proc.stdout.readline()  # the server prints its address once it listens
        prefix = "scripted-llm listening on http://127.0.0.1:"
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"scripted LLM did not start: {line!r} {(self.logdir / 'scripted_llm.err').read_text()}")
        self.port = int(line[len(prefix) :].strip())

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()
            self._proc = None
            self._stderr.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None

    def script(self, rules: list) -> None:
        """Replace the rules (and reset how often each has matched)."""
        self._call("PUT", "/_script", rules)

    def requests(self, full: bool = False) -> list:
        """Every body received on /v1/*, in order (full=True: method, path, headers and body)."""
        return self._call("GET", "/_requests?full=1" if full else "/_requests")

    def chat_requests(self) -> list:
        """Only the chat-completion request bodies."""
        return [r["body"] for r in self.requests(full=True) if r["path"].endswith("/chat/completions")]

    def clear_requests(self) -> None:
        self._call("DELETE", "/_requests")

    def reset(self) -> None:
        self.script([])
        self.clear_requests()


def sql_answer(sql: str, params: Optional[dict] = None, explanation: str = "") -> str:
    """The content of a structured answer as the model is asked to give it."""
    return json.dumps({"sql": sql, "params": params or {}, "explanation": explanation})


LLM_SH = Path(__file__).resolve().parents[2] / "scripts" / "llm.sh"


class LlamaServer:
    """The real local model: llama-server started by scripts/llm.sh (installed by scripts/setup.sh)."""

    def __init__(self, workdir: Path, model: str = "0.5b"):
        from support.servers import free_port

        self.workdir = workdir
        self.model = model
        self.port = free_port()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @staticmethod
    def installed(model: str = "0.5b") -> bool:
        out = subprocess.run([str(LLM_SH), "paths", model], capture_output=True, text=True, check=True).stdout
        paths = dict(line.split("=", 1) for line in out.splitlines())
        return Path(paths["LLAMA_SERVER"]).is_file() and Path(paths["LLM_MODEL_PATH"]).is_file()

    def start(self) -> None:
        subprocess.run([str(LLM_SH), "start", str(self.workdir), str(self.port), self.model], check=True, timeout=300)

    def stop(self) -> None:
        subprocess.run([str(LLM_SH), "stop", str(self.workdir)], check=True, timeout=60)
