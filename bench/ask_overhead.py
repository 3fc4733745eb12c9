#!/usr/bin/env python3
"""Proxy overhead of a cached ASK: the same question asked again (answered from the exact cache, no model call)
over one keep-alive HTTP connection, against the generated SQL sent to ClickHouse directly and through the proxy.

    bench/ask_overhead.py <proxy http port> <clickhouse http port> [requests]

The proxy must be configured with an LLM endpoint that answers the question once (bench/ask.sh starts the
project's scripted endpoint). Prints median and p95 per path and the cached ASK's extra time over direct SQL.
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse

QUESTION = "revenue per tenant for purchases"


def timed(port: int, body: str, n: int, path: str = "/") -> list:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", path, body=body.encode())
        r = conn.getresponse()
        data = r.read()
        out.append(time.perf_counter() - t0)
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status} from port {port}: {data[:300]!r}")
    conn.close()
    return out


def show(name: str, samples: list) -> float:
    samples = sorted(samples)
    p50 = statistics.median(samples) * 1e3
    p95 = samples[int(0.95 * (len(samples) - 1))] * 1e3
    print(f"{name:<34} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   (n={len(samples)})")
    return p50


def main() -> None:
    proxy, direct = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    first = json.loads(timed_json(proxy))
    sql = first["executed_sql"]
    ask = f"ASK '{QUESTION}' FORMAT TabSeparated"
    for _ in range(3):  # warm both paths
        timed(proxy, ask, 20), timed(direct, sql, 20), timed(proxy, sql, 20)
    d = show("SQL direct to ClickHouse", timed(direct, sql, n))
    p = show("SQL through aurora-proxy", timed(proxy, sql, n))
    a = show("cached ASK through aurora-proxy", timed(proxy, ask, n))
    print(f"cached ASK overhead over direct SQL: {a - d:.3f} ms (p50); over SQL through the proxy: {a - p:.3f} ms")


def timed_json(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/ask", body=json.dumps({"question": QUESTION}).encode())
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"/ask failed: {data[:500]!r}")
    return data


if __name__ == "__main__":
    main()
