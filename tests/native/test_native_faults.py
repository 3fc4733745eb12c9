"""Faults: a dead upstream, a client speaking garbage, a client vanishing mid-stream.

The dead-upstream case needs the proxy; the other two also run in direct mode, where they show
what ClickHouse itself does (and so what the proxy must match).
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid

import pytest

from support.driver import connect
from support.servers import free_port


@pytest.mark.proxy_only
def test_dead_upstream_fails_fast(start_proxy):
    dead_native, dead_http = free_port(), free_port()
    p = start_proxy(f"127.0.0.1:{dead_native}", f"http://127.0.0.1:{dead_http}")

    started = time.monotonic()
    with pytest.raises(Exception):
        connect(p.endpoint, connect_timeout=10, send_receive_timeout=10).execute("SELECT 1")
    assert time.monotonic() - started < 10

    started = time.monotonic()
    cli = subprocess.run(
        ["clickhouse-client", "--host", "127.0.0.1", "--port", str(p.native_port), "--query", "SELECT 1"],
        capture_output=True, timeout=30,
    )
    assert cli.returncode != 0
    assert time.monotonic() - started < 10
    assert p.alive()


def read_until_closed(sock, limit_s):
    """Read until EOF/reset; returns (closed, bytes received)."""
    sock.settimeout(limit_s)
    deadline = time.monotonic() + limit_s
    received = b""
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return True, received
            received += chunk
    except ConnectionResetError:
        return True, received
    except socket.timeout:
        return False, received
    return False, received


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # Hello with an absurd string length
        bytes(range(256)) * 4,
    ],
    ids=["http", "huge-length", "bytes"],
)
def test_garbage_client_is_dropped_and_next_client_served(proxy, garbage):
    with socket.create_connection((proxy.host, proxy.native_port), timeout=5) as sock:
        sock.sendall(garbage)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        closed, _ = read_until_closed(sock, 10)
    assert closed, "connection still open 10 s after garbage"

    assert connect(proxy).execute("SELECT 'still serving'") == [("still serving",)]


def test_client_vanishing_mid_stream_ends_its_query(proxy, direct):
    marker = f"vanish_{uuid.uuid4().hex}"
    client = connect(proxy)
    it = client.execute_iter(
        f"SELECT number, '{marker}' FROM numbers(1000000000)", settings={"max_block_size": 8192}
    )
    assert next(it) == (0, marker)

    watcher = connect(direct)
    find = "SELECT count() FROM system.processes WHERE position(query, %(m)s) > 0 AND position(query, 'system.processes') = 0"
    assert watcher.execute(find, {"m": marker}) == [(1,)]

    # Vanish: drop the TCP connection without a Cancel packet.
    client.connection.socket.shutdown(socket.SHUT_RDWR)
    client.connection.socket.close()

    deadline = time.monotonic() + 10
    while watcher.execute(find, {"m": marker}) != [(0,)]:
        assert time.monotonic() < deadline, "query still running 10 s after its client vanished"
        time.sleep(0.2)
    assert connect(proxy).execute("SELECT 1") == [(1,)]
