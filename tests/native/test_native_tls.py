"""Native protocol over TLS (`--native-tls-listen`): the password in the Hello never crosses the network in clear.

Each answer over TLS is compared with the direct (plain) answer from ClickHouse.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.request

import pytest
from clickhouse_driver import Client

from support.driver import connect
from support.servers import free_port

CLIENT_CONFIG = """<config><openSSL><client>
<verificationMode>none</verificationMode>
<invalidCertificateHandler><name>AcceptCertificateHandler</name></invalidCertificateHandler>
</client></openSSL></config>
"""


@pytest.fixture
def tls_proxy(start_proxy, direct, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    tls_port = free_port()
    p = start_proxy(
        f"127.0.0.1:{direct.native_port}", direct.http_url,
        ("--native-tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
    )
    p.tls_port = tls_port
    return p


@pytest.mark.proxy_only
def test_driver_over_tls_sees_what_direct_sees(tls_proxy, direct):
    query = "SELECT number, toString(number), [number] FROM numbers(100000) WHERE number % 7 = 3"
    expected = connect(direct).execute(query)
    for compression in (False, "lz4", "zstd"):
        secure = Client(
            "127.0.0.1", port=tls_proxy.tls_port, secure=True, verify=False, user="alice", password="alice-secret",
            compression=compression,
        )
        assert secure.execute(query) == expected
        secure.disconnect()


@pytest.mark.proxy_only
def test_clickhouse_client_secure(tls_proxy, direct, tmp_path):
    config = tmp_path / "client.xml"
    config.write_text(CLIENT_CONFIG)
    query = "SELECT version(), sum(number) FROM numbers(1000)"
    through = subprocess.run(
        ["clickhouse-client", "--config-file", str(config), "--secure", "--host", "127.0.0.1",
         "--port", str(tls_proxy.tls_port), "--query", query],
        capture_output=True, timeout=30,
    )
    straight = subprocess.run(
        ["clickhouse-client", "--host", "127.0.0.1", "--port", str(direct.native_port), "--query", query],
        capture_output=True, timeout=30,
    )
    assert through.returncode == 0, through.stderr
    assert through.stdout == straight.stdout


@pytest.mark.proxy_only
def test_plain_client_on_the_tls_port_is_refused_and_counted(tls_proxy):
    with socket.create_connection(("127.0.0.1", tls_proxy.tls_port), timeout=5) as sock:
        sock.sendall(b"\x00\x11ClickHouse client\x12\x10\xcc\xa8\x03\x00\x07default\x00")
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{tls_proxy.metrics_port}/metrics", timeout=5).read().decode()
    assert 'aurora_proxy_protocol_errors_total{protocol="native",side="tls"} 1' in metrics
    assert tls_proxy.alive()
