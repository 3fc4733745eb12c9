"""deploy/local/up.sh, status.sh and down.sh as a user runs them: the whole stack on free ports under a temporary
AURORA_HOME (real ClickHouse, real tansu broker, the release aurora-ingest and aurora-proxy, the event generator).

With the scripted OpenAI-compatible endpoint as the external LLM: events produced by the generator reach
analytics.events (read through the proxy); an ASK through clickhouse-client answers the per-tenant purchase counts
of October 2026 that the sample data generator made; status.sh names every part as running and the pipeline as
running; down.sh leaves no process and no open port.

With up.sh's default local model (llama-server with Qwen2.5-Coder 1.5B, which scripts/setup.sh installs): the quick
start's example question, asked as the README says, answers the generator's per-tenant counts.
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from pathlib import Path

import pytest

from support.analytics import generated
from support.llm import LlamaServer
from support.servers import HOST, REPO_ROOT, free_port, port_accepts

LOCAL = REPO_ROOT / "deploy" / "local"
QUESTION = "How many purchase events were there per tenant in October 2026?"
ASK_SQL = (
    "SELECT tenant_id, count() AS purchases FROM analytics.events "
    "WHERE event_type = {kind:String} AND toYYYYMM(timestamp) = {month:UInt32} GROUP BY tenant_id ORDER BY tenant_id"
)
PORT_VARS = ("CH_NATIVE_PORT", "CH_HTTP_PORT", "KAFKA_PORT", "PROXY_NATIVE_PORT", "PROXY_HTTP_PORT",
             "PROXY_METRICS_PORT", "INGEST_PORT", "LLAMA_PORT")
# Started by up.sh without a local LLM: name in status.sh -> pid file under AURORA_HOME.
PIDFILES = {"clickhouse": "clickhouse/clickhouse.pid", "broker": "kafka/tansu.pid", "ingest": "run/ingest.pid",
            "generator": "run/generator.pid", "proxy": "run/proxy.pid"}

pytestmark = [pytest.mark.proxy_only, pytest.mark.timeout(300)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run(script: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOCAL / script)], env=env, capture_output=True, text=True, timeout=timeout)


def client(port: int, query: str, timeout: float = 60) -> str:
    proc = subprocess.run(["clickhouse-client", "--host", HOST, "--port", str(port), "--query", query],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def stack_env(tmp_path: Path, **llm) -> tuple:
    """(environment, ports, AURORA_HOME) for an up.sh on free ports; `llm` picks the model (AURORA_LLM…)."""
    for binary in ("aurora-proxy", "aurora-ingest"):
        if not (REPO_ROOT / "target" / "release" / binary).exists():
            pytest.skip(f"target/release/{binary} is not built (scripts/test.sh builds it)")
    home = tmp_path / "aurora"
    ports: dict = {}
    while len(set(ports.values())) < len(PORT_VARS):
        ports = {var: free_port() for var in PORT_VARS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(AURORA_HOME=str(home), AURORA_EVENTS_RATE="20", AURORA_CH_STOP_TIMEOUT_S="5", **llm)
    if "AURORA_CACHE" in os.environ:
        env["AURORA_CACHE"] = os.environ["AURORA_CACHE"]
    return env, ports, home


def october_purchases() -> dict:
    """Purchase events per tenant in October 2026, from the sample data generator."""
    dataset = generated()
    return dict(collections.Counter(e["tenant_id"] for e in dataset.events
                                    if e["event_type"] == "purchase" and str(e["timestamp"]).startswith("2026-10")))


def down_and_reap(env: dict, pids: dict) -> tuple:
    """Runs down.sh; kills whatever it left. (down.sh's result, seconds, names that were still running)."""
    t1 = time.monotonic()
    down = run("down.sh", env, timeout=180)
    down_s = time.monotonic() - t1
    left = [name for name, pid in pids.items() if alive(pid)]
    for pid in pids.values():  # never leave a process behind, whatever failed before
        if alive(pid):
            os.kill(pid, 9)
    return down, down_s, left


def test_up_ask_status_down(tmp_path, scripted_llm):
    env, ports, home = stack_env(tmp_path, AURORA_LLM_BASE_URL=scripted_llm.base_url, AURORA_LLM_MODEL="scripted")
    scripted_llm.script([{"match": QUESTION, "responses": [{"content": {
        "sql": ASK_SQL, "params": {"kind": "purchase", "month": 202610}, "explanation": "Purchases per tenant."}}]}])

    dataset = generated()
    expected = october_purchases()
    pids: dict = {}
    try:
        t0 = time.monotonic()
        up = run("up.sh", env, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        up_s = time.monotonic() - t0
        pids = {name: int((home / path).read_text()) for name, path in PIDFILES.items()}
        assert all(alive(pid) for pid in pids.values()), pids
        for needle in (f"clickhouse-client --port {ports['PROXY_NATIVE_PORT']}",
                       f"http://127.0.0.1:{ports['PROXY_HTTP_PORT']}/ui/",
                       f"http://127.0.0.1:{ports['PROXY_METRICS_PORT']}/metrics",
                       f"http://127.0.0.1:{ports['INGEST_PORT']}/pipelines", f"ask('{QUESTION}')",
                       str(home / "log" / "aurora-proxy.log")):
            assert needle in up.stdout, (needle, up.stdout)

        # Events of the generator arrive in analytics.events, read through the proxy.
        proxy = ports["PROXY_NATIVE_PORT"]
        deadline = time.monotonic() + 60
        while True:
            rows = int(client(proxy, "SELECT count() FROM analytics.events"))
            if rows > len(dataset.events):
                break
            assert time.monotonic() < deadline, f"no generated events in analytics.events after 60 s ({rows} rows)"
            time.sleep(0.5)
        first_seen_s = time.monotonic() - t0

        # ASK through clickhouse-client against the proxy, answered by the scripted model.
        answer = client(proxy, f"SELECT * FROM ask('{QUESTION}')")
        got = {line.split("\t")[0]: int(line.split("\t")[1]) for line in answer.splitlines()}
        assert got == expected and len(got) >= 5, (got, expected)
        prompt = str(scripted_llm.requests()[0]["messages"])
        assert QUESTION in prompt and "analytics.events" in prompt

        # A second up.sh leaves everything as it was.
        again = run("up.sh", env, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert {name: int((home / path).read_text()) for name, path in PIDFILES.items()} == pids
        assert "already running" in again.stdout

        status = run("status.sh", env, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        for name, pid in pids.items():
            assert any(line.split()[:4] == [name, "running", "pid", str(pid)] for line in lines), (name, status.stdout)
        pipeline = [line for line in lines if line.split()[:1] == ["events"]]
        assert pipeline and pipeline[0].split()[1] == "running", status.stdout
        assert "analytics.events" in status.stdout
        print(f"up.sh {up_s:.1f} s, first generated events visible {first_seen_s:.1f} s after start")
    finally:
        down, down_s, left = down_and_reap(env, pids)
    assert down.returncode == 0, down.stdout + down.stderr
    print(f"down.sh {down_s:.1f} s")
    assert not left, f"still running after down.sh: {left}"
    open_ports = [var for var, port in ports.items() if port_accepts(port)]
    assert not open_ports, open_ports
    status = run("status.sh", env, timeout=60)
    assert status.returncode == 1 and status.stdout.count("stopped") == len(PIDFILES), status.stdout
    # The data stays.
    assert (home / "clickhouse" / "data").is_dir()


@pytest.mark.timeout(600)
def test_up_starts_the_local_model_and_the_quick_start_ask_answers(tmp_path):
    if not LlamaServer.installed("1.5b"):
        pytest.skip("llama-server or the 1.5B model is not installed (scripts/llm.sh install 1.5b)")
    env, ports, home = stack_env(tmp_path, AURORA_LLM_THREADS="2")  # no AURORA_LLM: up.sh's default, the 1.5B
    pids: dict = {}
    try:
        up = run("up.sh", env, timeout=400)
        assert up.returncode == 0, up.stdout + up.stderr
        pids = {name: int((home / path).read_text()) for name, path in {**PIDFILES, "llama": "llama/llama.pid"}.items()}
        assert "LLM: local" in up.stdout and "code 48" not in up.stdout, up.stdout
        # The question exactly as the README's quick start asks it, through clickhouse-client.
        # A small model on 2 shared cores: a minute or more (clickhouse-client waits up to 300 s).
        answer = client(ports["PROXY_NATIVE_PORT"], f"SELECT * FROM ask('{QUESTION}')", timeout=300)
        rows = [line.split("\t") for line in answer.splitlines()]
        assert rows, "the example ASK answered no rows"
        got = {row[0]: int(row[-1]) for row in rows}
        assert got == october_purchases(), answer
    finally:
        down, _, left = down_and_reap(env, pids)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not left, f"still running after down.sh: {left}"
