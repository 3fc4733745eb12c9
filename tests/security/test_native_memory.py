"""A hostile native client cannot make the proxy hold memory out of proportion to what it sends.

Each case replays an attack of the hostile-input probe (issue 11) against a proxy of its own and measures the
proxy's peak resident memory (VmHWM, reset before the attack) from /proc: it must grow by less than
MAX_GROWTH. On the code before the fix the same attacks took 1–2 GB. Every case also checks that the proxy
still serves an ordinary client afterwards.
"""

from __future__ import annotations

import threading

import pytest

from support import hostile
from support.driver import connect as driver_connect

pytestmark = pytest.mark.proxy_only

MAX_GROWTH = 200 << 20


def upstream(clickhouse):
    return f"127.0.0.1:{clickhouse.tcp_port}", f"http://127.0.0.1:{clickhouse.http_port}"


def under_attack(meter, attack, count):
    """Runs `count` copies of `attack` at once; asserts the proxy's peak RSS grew by less than MAX_GROWTH."""
    before = meter.reset()
    threads = [threading.Thread(target=attack) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "an attack did not end within 60 s"
    growth = meter.peak() - before
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth >> 20} MiB"


def still_serves(proxy):
    client = driver_connect(proxy.endpoint)
    assert client.execute("SELECT 1") == [(1,)]
    client.disconnect()


@pytest.fixture
def attacked(clickhouse, start_proxy):
    """A proxy of this test's own, with its peak memory reset once it is ready."""
    p = start_proxy(*upstream(clickhouse))
    still_serves(p)
    return p, hostile.PeakMemory(p.proc.pid)


def test_hello_strings_are_refused_before_they_are_buffered(attacked):
    """Two Hellos whose user names declare 200 MB each (before login) are refused from their length."""
    proxy, meter = attacked
    outcomes = []

    def attack():
        sock = hostile.connect(proxy.native_port)
        head = hostile.hello_head() + hostile.string("default")  # then the user name's length
        user_len = 200 << 20
        sent_all = hostile.send_quietly(sock, head + hostile.varuint(user_len))
        chunk = b"u" * (1 << 20)
        for _ in range(200):
            if not sent_all or not hostile.send_quietly(sock, chunk):
                break
        closed, received = hostile.read_until_closed(sock, 10)
        outcomes.append((closed, hostile.exception_code(received)))
        sock.close()

    under_attack(meter, attack, 2)
    # ClickHouse's code for a string over its limit, then the connection closes.
    assert outcomes == [(True, 131), (True, 131)], outcomes
    assert "user name of 209715200 bytes is longer than the 65536 bytes allowed" in proxy.log_path.read_text()
    still_serves(proxy)


def test_a_frame_that_claims_to_expand_a_million_times_is_refused(attacked):
    """43 bytes with a valid checksum that declare 1 GiB, three connections at once."""
    proxy, meter = attacked
    outcomes = []

    def attack():
        sock = hostile.logged_in(proxy.native_port)
        lie = hostile.frame(b"\x00" * 34, 1 << 30)
        sock.sendall(hostile.query("SELECT 1") + hostile.data_packet_start() + lie)
        closed, received = hostile.read_until_closed(sock, 10)
        outcomes.append((closed, hostile.exception_code(received)))
        sock.close()

    under_attack(meter, attack, 3)
    # CANNOT_DECOMPRESS, as ClickHouse answers a frame whose sizes cannot be true.
    assert outcomes == [(True, 271)] * 3, outcomes
    still_serves(proxy)


def test_a_bad_checksum_gets_clickhouses_code(attacked):
    proxy, _ = attacked
    sock = hostile.logged_in(proxy.native_port)
    good = hostile.lz4_frame(hostile.block_head(0, 0))
    bad = good[:-1] + bytes([good[-1] ^ 0x55])
    sock.sendall(hostile.query("SELECT 1") + hostile.data_packet_start() + bad)
    closed, received = hostile.read_until_closed(sock, 10)
    assert closed and hostile.exception_code(received) == 40  # CHECKSUM_DOESNT_MATCH
    sock.close()


def test_a_block_that_never_ends_is_bounded_by_the_framing_budget(clickhouse, start_proxy):
    """A Data block declaring 2^40 rows, fed with 0.5 MB frames that each decompress to 128 MiB, on three
    connections at once: the decompressed bytes count against max_framed_packet per connection and against
    max_framing_memory over all of them; what does not fit is relayed unframed instead of held."""
    proxy = start_proxy(*upstream(clickhouse), ("--max-framing-memory", str(128 << 20)))
    still_serves(proxy)
    sent = []
    big = hostile.lz4_frame(bytes(128 << 20))
    assert len(big) < 600_000

    def attack():
        sock = hostile.logged_in(proxy.native_port, timeout=30)
        start = hostile.query("SELECT 1") + hostile.data_packet_start()
        start += hostile.lz4_frame(hostile.block_head(1, 1 << 40))
        total = len(start) if hostile.send_quietly(sock, start) else 0
        for _ in range(6):
            if not hostile.send_quietly(sock, big):
                break
            total += len(big)
        sent.append(total)
        hostile.read_until_closed(sock, 15)
        sock.close()

    under_attack(hostile.PeakMemory(proxy.proc.pid), attack, 3)
    assert len(sent) == 3 and all(total > 3 << 20 for total in sent), sent
    still_serves(proxy)


def test_ordinary_large_inserts_still_pass(clickhouse, start_proxy, db):
    """The bounds leave real traffic alone: a 2M-row LZ4 INSERT through a proxy with a small framing budget."""
    proxy = start_proxy(*upstream(clickhouse), ("--max-framing-memory", str(64 << 20)))
    client = driver_connect(proxy.endpoint, compression="lz4")
    client.execute(f"CREATE TABLE {db}.big (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    rows = [(i, f"row {i}") for i in range(2_000_000)]
    client.execute(f"INSERT INTO {db}.big VALUES", rows)
    assert client.execute(f"SELECT count(), sum(n) FROM {db}.big") == [(2_000_000, sum(range(2_000_000)))]
    client.disconnect()
