"""Faults around the proxy: an upstream that is down or unreachable gets a 502 in ClickHouse's shape within a
bounded time; an upstream that dies mid-answer closes the client's connection (the status was already sent);
on SIGTERM a request in flight still finishes."""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import threading
import time

import pytest
from clickhouse_driver import Client

from conftest import exception_code, metric, request
from support.servers import HOST, ProxyProcess, free_port

pytestmark = pytest.mark.proxy_only


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def test_upstream_down_is_a_bad_gateway_in_clickhouse_shape(start_proxy):
    port = closed_port()
    p = start_proxy(f"{HOST}:{port}", f"http://{HOST}:{port}")
    started = time.monotonic()
    answer = request(p.endpoint, body="SELECT 1")
    elapsed = time.monotonic() - started
    assert answer.status == 502, answer.text
    assert exception_code(answer) == 210
    assert answer.text.startswith(
        f"Code: 210. DB::NetException: Aurora proxy: cannot connect to ClickHouse at http://{HOST}:{port}: "
    ), answer.text
    assert answer.text.endswith("(NETWORK_ERROR) \n")
    assert elapsed < 2.0
    assert metric(p.endpoint, "aurora_proxy_upstream_connect_errors_total", protocol="http") >= 1
    # The proxy itself keeps serving: ping answers the same way. ASK checks the asker's credentials with
    # ClickHouse before anything else, so it says that ClickHouse cannot be reached (not "no model").
    assert request(p.endpoint, method="GET", path="/ping").status == 502
    ask = request(p.endpoint, body="ASK 'still here?'")
    assert exception_code(ask) == 210 and "ClickHouse" in ask.text and "LLM" not in ask.text, ask.text


@contextlib.contextmanager
def unanswered_port():
    """A port whose listener never accepts, its accept queue full: further SYNs are dropped and a connect hangs,
    as it does towards a host that is down."""
    blackhole = socket.socket()
    blackhole.bind((HOST, 0))
    blackhole.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(blackhole.getsockname())
            fillers.append(filler)
        yield blackhole.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        blackhole.close()


def test_unreachable_upstream_fails_within_the_connect_timeout(start_proxy):
    # A connect that hangs, as towards a host that is down: the proxy's connect timeout (1 s here) must end it.
    with unanswered_port() as port:
        p = start_proxy(f"{HOST}:{closed_port()}", f"http://{HOST}:{port}", ("--connect-timeout", "1s"))
        started = time.monotonic()
        answer = request(p.endpoint, body="SELECT 1", timeout=10)
        elapsed = time.monotonic() - started
        assert answer.status == 502 and exception_code(answer) == 210, answer.text
        assert 0.9 < elapsed < 3.0, elapsed
        assert "no connection within 1s (connect_timeout)" in answer.text, answer.text


class BrokenUpstream:
    """An HTTP server that starts a chunked 200 answer, sends some rows, then resets the connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/tab-separated-values\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + b"6\r\nrow 1\n\r\n" * 100)
                time.sleep(0.2)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def close(self):
        self.sock.close()


def test_upstream_reset_mid_answer_closes_the_client_connection(start_proxy):
    upstream = BrokenUpstream()
    try:
        p = start_proxy(f"{HOST}:{closed_port()}", f"http://{HOST}:{upstream.port}")
        conn = http.client.HTTPConnection(HOST, p.endpoint.http_port, timeout=10)
        conn.request("POST", "/", body=b"SELECT 1")
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
        conn.close()
        assert metric(p.endpoint, "aurora_proxy_http_responses_total", **{"class": "2xx", "outcome": "aborted"}) >= 1
    finally:
        upstream.close()


def test_sigterm_lets_a_request_in_flight_finish(clickhouse, tmp_path):
    p = ProxyProcess(f"{HOST}:{clickhouse.tcp_port}", f"http://{HOST}:{clickhouse.http_port}", tmp_path)
    p.start()
    try:
        result = {}

        def slow():
            result["answer"] = request(p.endpoint, body="SELECT sleep(2), 42 FORMAT TSV", timeout=20)

        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.7)
        p.proc.send_signal(signal.SIGTERM)
        worker.join(timeout=20)
        answer = result["answer"]
        assert (answer.status, answer.body) == (200, b"0\t42\n")
        assert p.proc.wait(timeout=5) == 0
        # No longer accepting.
        with pytest.raises(OSError):
            socket.create_connection((HOST, p.endpoint.http_port), timeout=1).close()
    finally:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def test_an_open_circuit_fails_fast_on_both_protocols_and_tries_again_after_the_cooldown(start_proxy):
    """A node that does not answer connects: after `circuit_failures` failed connects (each waits out the connect
    timeout) its circuit opens, and clients fail at once with code 210 instead of waiting too, until the cooldown."""
    with unanswered_port() as port:
        p = start_proxy(f"{HOST}:{port}", f"http://{HOST}:{port}",
                        ("--connect-timeout", "1s", "--circuit-failures", "2", "--circuit-cooldown", "4s",
                         "--health-interval", "60s"))
        timings = []
        for _ in range(4):
            started = time.monotonic()
            answer = request(p.endpoint, body="SELECT 1", timeout=10)
            timings.append(time.monotonic() - started)
            assert answer.status == 502 and exception_code(answer) == 210, answer.text
            if "circuit" in answer.text:
                break
        # The failed connects (the start-up probe's among them) opened it within two requests.
        assert "circuit" in answer.text and "circuit_cooldown" in answer.text, answer.text
        assert timings[-1] < 0.3 and len(timings) <= 3, timings
        # The native side fails fast too, with the same reason.
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            Client(HOST, port=p.native_port, connect_timeout=5).execute("SELECT 1")
        assert time.monotonic() - started < 0.5
        assert getattr(raised.value, "code", None) == 210 and "circuit" in str(raised.value), raised.value
        assert metric(p.endpoint, "aurora_proxy_node_circuit_open_total", node="upstream") >= 1
        # After the cooldown the node is tried again: the connect waits out its timeout once more.
        time.sleep(4.2)
        started = time.monotonic()
        answer = request(p.endpoint, body="SELECT 1", timeout=10)
        assert time.monotonic() - started > 0.9 and "no connection within 1s" in answer.text, answer.text
