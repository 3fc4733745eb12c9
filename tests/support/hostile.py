"""A hostile native-protocol client: packets built byte by byte, so that tests can send what no driver would
(lengths that lie, frames that claim to expand a million times, blocks that never end), and a way to read the
memory a process under attack reached.

Packets are written for revision 54412 (the test ClickHouse's own), so their layout is fixed:
ClickHouse `src/Core/Protocol.h`, `src/Client/Connection.cpp` (sendHello, sendQuery, sendData) and
`src/Compression/CompressedWriteBuffer.cpp` (frame header and CityHash128 checksum).
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import lz4.block
from clickhouse_cityhash.cityhash import CityHash128

REVISION = 54412
LZ4 = 0x82


def varuint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return varuint(len(data)) + data


def hello_head() -> bytes:
    """A Hello up to (not including) its database name."""
    return varuint(0) + string("hostile") + varuint(18) + varuint(16) + varuint(REVISION)


def hello(user: bytes = b"default", password: bytes = b"", database: bytes = b"default") -> bytes:
    return hello_head() + string(database) + string(user) + string(password)


def query(text: str, compression: bool = True) -> bytes:
    client_info = (
        b"\x01"  # initial query
        + string("") + string("") + string("127.0.0.1:1")  # initial user, query id, address
        + b"\x01"  # interface: TCP
        + string("hostile") + string("localhost") + string("hostile")  # os user, hostname, client name
        + varuint(18) + varuint(16) + varuint(REVISION)
        + string("")  # quota key
        + varuint(1)  # version patch
    )
    return (varuint(1) + string("") + client_info
            + string("")  # no settings (binary form: the empty name ends the list)
            + varuint(2)  # stage: Complete
            + varuint(1 if compression else 0)
            + string(text))


def frame(payload: bytes, decompressed_size: int, method: int = LZ4) -> bytes:
    """One compressed frame with a valid checksum; the sizes in its header are whatever the caller says."""
    header = struct.pack("<BII", method, 9 + len(payload), decompressed_size)
    checksum = CityHash128(header + payload)
    # The high 64 bits first, each half little-endian (as clickhouse-driver's write_binary_uint128).
    return struct.pack("<QQ", checksum >> 64, checksum & (2**64 - 1)) + header + payload


def lz4_frame(data: bytes) -> bytes:
    return frame(lz4.block.compress(data, store_size=False), len(data))


def block_head(columns: int, rows: int, column_name: str = "x", column_type: str = "UInt64") -> bytes:
    """BlockInfo, counts and the first column's name and type: the start of a block whose data follows."""
    info = b"\x01\x00" + b"\x02" + struct.pack("<i", -1) + b"\x00"
    head = info + varuint(columns) + varuint(rows)
    if columns:
        head += string(column_name) + string(column_type)
    return head


def data_packet_start() -> bytes:
    """A Data packet's code and (empty) table name; its block follows in compressed frames."""
    return varuint(2) + string("")


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def logged_in(port: int, timeout: float = 10.0) -> socket.socket:
    """A connection past the handshake, as the default user: the server's Hello has been read."""
    sock = connect(port, timeout)
    sock.sendall(hello())
    sock.recv(65536)
    return sock


def http_select_one(port: int, timeout: float = 15.0) -> tuple[int, bytes]:
    """`SELECT 1` over HTTP on a fresh connection: (status, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/", body=b"SELECT 1")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bool, bytes]:
    """Reads until the peer closes (or resets); returns (closed, bytes received)."""
    deadline = time.monotonic() + limit_s
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True, received
        except socket.timeout:
            return False, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Sends all of `data`; False when the peer closed first (what a refusing server does)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return False


def exception_code(received: bytes) -> int | None:
    """The code of the first server Exception packet in `received`: `2 | code (i32) | "DB::Exception" | …`."""
    name = string("DB::Exception")
    at = received.find(name)
    while at >= 5:
        if received[at - 5] == 2:
            return struct.unpack("<i", received[at - 4:at])[0]
        at = received.find(name, at + 1)
    return None


class PeakMemory:
    """The peak resident memory of a process (VmHWM), reset at the start so each case measures itself."""

    def __init__(self, pid: int):
        self.pid = pid

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} missing from /proc/{self.pid}/status")

    def settle(self, timeout_s: float = 30.0) -> None:
        """Waits until the resident memory stops moving (the embedding model, when configured, is read in after
        the proxy starts listening: ~230 MB measured), so that a case measures only itself."""
        deadline = time.monotonic() + timeout_s
        last = self._status("VmRSS")
        steady_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self._status("VmRSS")
            if abs(now - last) > 2 << 20:
                steady_since = time.monotonic()
            last = now
            if time.monotonic() - steady_since >= 1.5:
                return
        raise RuntimeError(f"resident memory of {self.pid} still moving after {timeout_s} s")

    def reset(self) -> int:
        """Resets the high-water mark to the current RSS once it has settled (Linux ≥ 4.0: `echo 5 >
        clear_refs`); returns it."""
        self.settle()
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def peak(self) -> int:
        return self._status("VmHWM")
