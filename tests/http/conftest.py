"""Helpers for the HTTP-interface tests: one request to an Endpoint, and the comparison of the proxy's answer
with ClickHouse's own.

Requests go through `http.client`, so the test sees the status, the headers and the body bytes exactly as they
arrive (no decompression, no redirects, no retries).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import urllib.parse
from typing import Iterable, Optional, Union

import pytest

#: Headers whose values must be the same through the proxy as from ClickHouse. Date, Keep-Alive, Connection and
#: the transfer framing describe one hop; query ids, progress and summaries differ from one run to the next.
COMPARED_HEADERS = (
    "content-type",
    "content-encoding",
    "www-authenticate",
    "x-clickhouse-exception-code",
    "x-clickhouse-format",
    "x-clickhouse-timezone",
    "x-clickhouse-server-display-name",
)


@dataclasses.dataclass
class Answer:
    status: int
    #: Lower-case names; repeated headers joined with ", ".
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def compared(self) -> tuple:
        return (self.status, {h: self.headers.get(h) for h in COMPARED_HEADERS}, self.body)


Body = Union[bytes, str, Iterable[bytes], None]


def request(endpoint, method: str = "POST", path: str = "/", params: Optional[dict] = None,
            body: Body = None, headers: Optional[dict] = None, timeout: float = 60) -> Answer:
    """One request on a fresh connection; the whole body is read."""
    conn = _send(endpoint, method, path, params, body, headers, timeout)
    try:
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, _headers(response), data)
    finally:
        conn.close()


def request_digest(endpoint, params: dict, method: str = "GET", timeout: float = 300) -> tuple:
    """(status, byte count, sha256) of an answer read in 1 MiB pieces: large results are never held whole."""
    conn = _send(endpoint, method, "/", params, None, None, timeout)
    try:
        response = conn.getresponse()
        digest, count = hashlib.sha256(), 0
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            count += len(chunk)
        return response.status, count, digest.hexdigest()
    finally:
        conn.close()


def _send(endpoint, method, path, params, body, headers, timeout) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.http_port, timeout=timeout)
    url = path + ("?" + urllib.parse.urlencode(params) if params else "")
    if isinstance(body, str):
        body = body.encode()
    headers = dict(headers or {})
    chunked = body is not None and not isinstance(body, (bytes, bytearray))
    conn.request(method, url, body=body, headers=headers, encode_chunked=chunked)
    return conn


def _headers(response) -> dict:
    out: dict = {}
    for name, value in response.getheaders():
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def compare(proxy, direct, **kwargs) -> Answer:
    """Sends the same request to both; asserts that status, compared headers and body bytes agree."""
    through = request(proxy, **kwargs)
    reference = request(direct, **kwargs)
    assert through.compared() == reference.compared(), (
        f"proxy and ClickHouse disagree for {kwargs}:\nproxy:  {through.compared()!r:.2000}\n"
        f"direct: {reference.compared()!r:.2000}"
    )
    return through


def without_elapsed(json_body: bytes) -> dict:
    """A JSON-format answer without its timing statistics (they differ between two runs of one query)."""
    doc = json.loads(json_body)
    doc.get("statistics", {}).pop("elapsed", None)
    return doc


def exception_code(answer: Answer) -> Optional[int]:
    """The ClickHouse exception code of an error answer: from the header when there is one (since 19.x),
    else from the body's `Code: N` prefix (18.x)."""
    if "x-clickhouse-exception-code" in answer.headers:
        return int(answer.headers["x-clickhouse-exception-code"])
    text = answer.text
    if text.startswith("Code: "):
        digits = text[6:].split(".", 1)[0].split(",", 1)[0]
        return int(digits)
    return None


def metric(endpoint, name: str, **labels) -> float:
    """The value of one sample on the proxy's /metrics (0 when absent)."""
    conn = http.client.HTTPConnection(endpoint.host, endpoint.metrics_port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        sample, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in sample for k, v in labels.items()):
            return float(value)
    return 0.0


@pytest.fixture
def table(db, direct):
    """A MergeTree table `db.t` with many column types and 1000 rows, for format comparisons."""
    name = f"{db}.t"
    ddl = (
        f"CREATE TABLE {name} (id UInt64, i Int32, f Float64, s String, d Date, dt DateTime, "
        "a Array(String), n Nullable(Int32), fs FixedString(3), e Enum8('x' = 1, 'y' = 2), u UUID) "
        "ENGINE = MergeTree ORDER BY id"
    )
    assert request(direct, body=ddl).status == 200
    fill = (
        f"INSERT INTO {name} SELECT number, toInt32(number) - 500, number / 7, concat('s\\t', toString(number), "
        "'\\n\\'\"'), toDate('2024-01-01') + number % 400, toDateTime('2024-01-01 00:00:00') + number * 3600, "
        "[toString(number), 'x'], if(number % 3 = 0, NULL, toInt32(number)), toFixedString('abc', 3), "
        "if(number % 2 = 0, 'x', 'y'), toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') FROM numbers(1000)"
    )
    answer = request(direct, body=fill)
    assert answer.status == 200, answer.text
    return name
