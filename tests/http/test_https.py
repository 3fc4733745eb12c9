"""The HTTP interface over TLS (`--https-listen`): the same answers as plain HTTP straight to ClickHouse, for a
curl-like client that checks the certificate and for clickhouse-connect; a client that does not speak TLS is
refused and counted."""

from __future__ import annotations

import socket
import ssl
import subprocess
import urllib.parse
import urllib.request

import clickhouse_connect
import pytest

from conftest import metric, request
from support.servers import free_port

pytestmark = pytest.mark.proxy_only


@pytest.fixture
def https_proxy(start_proxy, direct, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    port = free_port()
    p = start_proxy(
        f"127.0.0.1:{direct.native_port}", direct.http_url,
        ("--https-listen", f"127.0.0.1:{port}", "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
    )
    p.https_port, p.cert = port, cert
    return p


def test_answers_over_https_equal_plain_http_direct(https_proxy, direct):
    context = ssl.create_default_context(cafile=str(https_proxy.cert))
    query = "SELECT number, toString(number) FROM numbers(100000) WHERE number % 7 = 3 FORMAT TSV"
    url = f"https://127.0.0.1:{https_proxy.https_port}/?" + urllib.parse.urlencode(
        {"query": query, "user": "alice", "password": "alice-secret"})
    with urllib.request.urlopen(url, context=context, timeout=30) as answer:
        through = answer.read()
    assert through == request(direct, params={"query": query}).body
    # A refusal over TLS is ClickHouse's own too.
    bad = f"https://127.0.0.1:{https_proxy.https_port}/?" + urllib.parse.urlencode({"query": "SELEC 1"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(bad, context=context, timeout=30)
    assert raised.value.code == request(direct, params={"query": "SELEC 1"}).status


def test_clickhouse_connect_over_https(https_proxy, direct):
    secure = clickhouse_connect.get_client(host="127.0.0.1", port=https_proxy.https_port, interface="https",
                                           ca_cert=str(https_proxy.cert), username="alice", password="alice-secret")
    plain = clickhouse_connect.get_client(host="127.0.0.1", port=direct.http_port, username="alice",
                                          password="alice-secret")
    query = "SELECT number, number * 2 FROM numbers(1000)"
    assert secure.query(query).result_rows == plain.query(query).result_rows
    secure.close()
    plain.close()


def test_a_plain_http_client_on_the_https_port_is_refused_and_counted(https_proxy):
    with socket.create_connection(("127.0.0.1", https_proxy.https_port), timeout=5) as sock:
        sock.sendall(b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    assert metric(https_proxy.endpoint, "aurora_proxy_protocol_errors_total", protocol="http", side="tls") == 1
    assert https_proxy.alive()
