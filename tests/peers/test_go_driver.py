"""clickhouse-go/v2, the driver of Grafana's ClickHouse data source, against aurora-proxy and ClickHouse directly.

The Go tests in tests/go compare every answer through the proxy with the direct one; this file hands them the
endpoints of the session's fixtures and fails with the Go output of every failed test. Two driver versions: the
newest served (v2.51.0) and the one grafana/clickhouse-datasource pins (v2.43.0). Needs `scripts/go-peers.sh install`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "go-peers.sh"
DRIVERS = ("v2.51.0", "v2.43.0")
GO_TIMEOUT_S = 360


def run_go(driver: str, env_extra: dict, run: str) -> None:
    if shutil.which("go") is None:
        pytest.skip("go is not installed (scripts/go-peers.sh install)")
    env = {**os.environ, **env_extra}
    proc = subprocess.run(
        [str(SCRIPT), "test", "--driver", driver, "-json", "-run", run],
        env=env, capture_output=True, text=True, timeout=GO_TIMEOUT_S,
    )
    outputs: dict = {}
    results: dict = {}
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        test = event.get("Test")
        if not test:
            continue
        if event.get("Action") == "output":
            outputs.setdefault(test, []).append(event.get("Output", ""))
        elif event.get("Action") in ("pass", "fail", "skip"):
            results[test] = event["Action"]
    failed = [t for t, r in results.items() if r == "fail"]
    if proc.returncode != 0 or failed or not results:
        report = "\n".join("".join(outputs.get(t, [])) for t in failed) or proc.stdout[-5000:]
        pytest.fail(f"go test ({driver}) exited {proc.returncode}; failed: {failed}\n{report}\n{proc.stderr[-3000:]}")
    skipped = {t: "".join(outputs.get(t, [])).strip().splitlines()[-2:] for t, r in results.items() if r == "skip"}
    print(f"clickhouse-go {driver}: {results}; skipped: {skipped}")


def endpoints(direct, proxy) -> dict:
    return {
        "AURORA_GO_DIRECT_NATIVE": f"{direct.host}:{direct.native_port}",
        "AURORA_GO_PROXY_NATIVE": f"{proxy.host}:{proxy.native_port}",
        "AURORA_GO_DIRECT_HTTP": f"{direct.host}:{direct.http_port}",
        "AURORA_GO_PROXY_HTTP": f"{proxy.host}:{proxy.http_port}",
    }


@pytest.mark.timeout(GO_TIMEOUT_S + 30)
@pytest.mark.parametrize("driver", DRIVERS)
def test_go_driver_sees_through_the_proxy_what_it_sees_directly(driver, direct, proxy):
    run_go(driver, endpoints(direct, proxy),
           "^(TestPing|TestTypes|TestStreamMillionRows|TestBatchInsert|TestSettings|TestErrorCodes|"
           "TestCancelMidQuery|TestCompression|TestHTTPProtocol|TestBatchWithoutColumnList)$")


@pytest.mark.proxy_only
@pytest.mark.timeout(GO_TIMEOUT_S + 30)
@pytest.mark.parametrize("driver", DRIVERS)
def test_go_driver_over_the_proxys_tls_listener(driver, direct, start_proxy, tmp_path):
    from support.servers import free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )
    tls_port = free_port()
    p = start_proxy(
        f"127.0.0.1:{direct.native_port}", direct.http_url,
        ("--native-tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
    )
    env = endpoints(direct, p.endpoint)
    env["AURORA_GO_PROXY_TLS"] = f"127.0.0.1:{tls_port}"
    run_go(driver, env, "^TestTLS$")
