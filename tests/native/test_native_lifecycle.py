"""Lifecycle faults through the proxy: SIGTERM while a query runs, and ClickHouse going away mid-query.

These need the real proxy (its own process to signal, its own upstream to cut), so they are proxy-only.
"""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
from clickhouse_driver import errors

from support.driver import connect
from support.servers import port_accepts


def _run_in_thread(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # the test inspects it
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _wait_for_exit(p, limit_s):
    """Waits for the proxy process to exit by itself; returns its exit code and forgets the process."""
    code = p.proc.wait(timeout=limit_s)
    p.proc = None  # already stopped: nothing left for the fixture's teardown
    return code


@pytest.mark.proxy_only
def test_sigterm_lets_a_running_query_finish_then_exits(start_proxy, direct):
    p = start_proxy(f"127.0.0.1:{direct.native_port}", direct.http_url)
    client = connect(p.endpoint)
    assert client.execute("SELECT 1") == [(1,)]
    thread, box = _run_in_thread(lambda: client.execute("SELECT sleep(2), 'finished'"))
    time.sleep(0.5)

    p.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert not port_accepts(p.native_port), "the proxy still accepts new clients after SIGTERM"

    thread.join(10)
    assert box.get("result") == [(0, "finished")], box
    assert _wait_for_exit(p, 5) == 0


@pytest.mark.proxy_only
def test_shutdown_timeout_bounds_the_drain(start_proxy, direct):
    p = start_proxy(f"127.0.0.1:{direct.native_port}", direct.http_url, ("--shutdown-timeout", "1s"))
    client = connect(p.endpoint, send_receive_timeout=20)
    client.execute("SELECT 1")
    # 18.16 caps sleep() at 3 s per block; three blocks of one row make a 9 s query.
    thread, box = _run_in_thread(
        lambda: client.execute("SELECT sleep(3) FROM numbers(3)", settings={"max_block_size": 1})
    )
    time.sleep(0.5)
    started = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    assert _wait_for_exit(p, 5) == 0
    assert time.monotonic() - started < 3, "shutdown took longer than its 1 s timeout allows"
    thread.join(10)
    assert "error" in box, f"a query cut by shutdown must fail, got {box}"


class CuttableRelay:
    """A TCP relay between the proxy and ClickHouse that can drop every connection at once."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass

    def cut(self):
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()

    def close(self):
        self.cut()
        self.listener.close()


@pytest.mark.proxy_only
def test_clickhouse_going_away_mid_stream_gives_the_client_an_exception(start_proxy, direct):
    relay = CuttableRelay(direct.native_port)
    try:
        p = start_proxy(f"127.0.0.1:{relay.port}", direct.http_url)
        client = connect(p.endpoint, send_receive_timeout=20)
        rows = client.execute_iter("SELECT number FROM numbers(1000000000)", settings={"max_block_size": 1000})
        for i, _ in enumerate(rows):
            if i == 5000:
                break
        started = time.monotonic()
        relay.cut()
        with pytest.raises(errors.Error) as caught:
            for _ in rows:
                pass
        assert time.monotonic() - started < 10
        assert getattr(caught.value, "code", None) == 210, caught.value
        assert "closed the connection" in str(caught.value)
        assert p.alive()
        # The proxy serves the next client as soon as ClickHouse is reachable again.
        assert connect(p.endpoint).execute("SELECT 'back'") == [("back",)]
    finally:
        relay.close()
