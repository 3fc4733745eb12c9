"""ClickHouse's own newest native client: chdb-core's `remote()` table function (ClickHouse 26.9's C++ `Connection`),
through the proxy and directly to the 18.16 server.

Measured: against 18.16 (revision 54412, before settings travel as strings) the 26.9 client writes its changed settings
in the old binary form, and they include settings 18.16 does not know (`dialect`, `implicit_select`, ...): 18.16
answers every remote() query with code 115 "Unknown setting dialect". Only what happens before the Query packet
(handshake, login, TablesStatusRequest) can be compared; the query comparisons skip with the server's exact reason
while the server refuses them directly too.

Each chdb call runs in a child process with a timeout: chdb is in-process, and a stuck remote() would hang the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

chdb = pytest.importorskip("chdb", reason="chdb-core is not installed (scripts/setup.sh)")

CALL_TIMEOUT_S = 30

RUNNER = textwrap.dedent(
    """
    import json, sys, chdb
    try:
        out = chdb.query(sys.argv[1], "TSVWithNamesAndTypes").bytes()
        print(json.dumps({"ok": out.decode("utf-8", "replace")}))
    except Exception as e:
        print(json.dumps({"error": str(e)}))
    """
)


def run(sql: str) -> dict:
    """Runs one chdb query in a child process: {"ok": tsv} or {"error": message} or {"timeout": seconds}."""
    try:
        done = subprocess.run([sys.executable, "-c", RUNNER, sql], capture_output=True, timeout=CALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"timeout": CALL_TIMEOUT_S}
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


def code_of(result: dict) -> int | None:
    """The first `Code: N` of an error: the code the remote server (or chdb itself) gave."""
    message = result.get("error", "")
    if not message.startswith("Code: "):
        return None
    return int(message[6:].split(".", 1)[0])


def first_line(result: dict) -> str:
    """What a user reads first: the error's first line, without stack traces (which differ run to run)."""
    return result.get("error", "").split("Stack trace", 1)[0].strip()


def remote(endpoint, table: str, user: str = "default", password: str = "") -> str:
    database, name = table.split(".")
    return f"remote('{endpoint.host}:{endpoint.native_port}', '{database}', '{name}', '{user}', '{password}')"


QUERIES = {
    "one": "SELECT * FROM {r}",
    "version": "SELECT version(), 1 + 1 FROM {r}",
    "types": (
        "SELECT toInt8(-1), toUInt16(65535), toInt64(-9), toFloat32(0.5), toFloat64(1e100), toDecimal64(3.14, 2), "
        "'s', toFixedString('ab', 2), toDate('2024-01-02'), toDateTime('2024-01-02 03:04:05', 'UTC'), "
        "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0'), [1, 2], (1, 'a'), CAST(NULL AS Nullable(Int32)), "
        "CAST('b' AS Enum8('a' = 1, 'b' = 2)), toIPv4('1.2.3.4') FROM {r}"
    ),
    "large": "SELECT number, toString(number) FROM {numbers} LIMIT 300000",
    "large_uncompressed": "SELECT number, toString(number) FROM {numbers} LIMIT 300000 SETTINGS network_compression_method = 'none'",
    "zstd": "SELECT sum(number) FROM {numbers} LIMIT 100000 SETTINGS network_compression_method = 'zstd'",
    "error": "SELECT throwIf(dummy = 0, 'boom') FROM {r}",
}


def refused_directly(result: dict) -> str | None:
    """The server's own refusal of every remote() query from this client, if that is what `result` is."""
    if code_of(result) == 115 and "Unknown setting" in result.get("error", ""):
        return first_line(result)
    return None


def test_direct_18_16_refuses_the_26_9_client_settings(direct):
    """Documents the blind spot: if this fails, the server accepts chdb's queries and the comparisons below run."""
    result = run(QUERIES["one"].format(r=remote(direct, "system.one")))
    assert refused_directly(result), result


def test_query_error_reaches_the_client_as_directly(proxy, direct):
    """Whatever 18.16 answers to chdb's Query (here: code 115 for its unknown binary settings), the client sees
    the same through the proxy, in the same time bound — not a hang."""
    via_direct = run(QUERIES["one"].format(r=remote(direct, "system.one")))
    via_proxy = run(QUERIES["one"].format(r=remote(proxy, "system.one")))
    assert "timeout" not in via_direct
    assert "timeout" not in via_proxy, f"through the proxy remote() got no answer in {CALL_TIMEOUT_S} s; directly: {first_line(via_direct)}"
    assert code_of(via_proxy) == code_of(via_direct)
    assert first_line(via_proxy).replace(str(proxy.native_port), "P") == first_line(via_direct).replace(str(direct.native_port), "P")


@pytest.mark.parametrize("user,password,expected", [("alice", "wrong", 193), ("nobody", "x", 192)])
def test_refused_login_same_code(proxy, direct, user, password, expected):
    via_direct = run(QUERIES["one"].format(r=remote(direct, "system.one", user, password)))
    via_proxy = run(QUERIES["one"].format(r=remote(proxy, "system.one", user, password)))
    assert code_of(via_direct) == expected, via_direct
    assert code_of(via_proxy) == expected, via_proxy


def test_missing_table_same_answer(proxy, direct):
    """remote() asks the server whether the table exists (TablesStatusRequest, before any Query) and DESCs it."""
    via_direct = run(QUERIES["one"].format(r=remote(direct, "system.no_such_table")))
    via_proxy = run(QUERIES["one"].format(r=remote(proxy, "system.no_such_table")))
    assert code_of(via_direct) is not None, via_direct
    assert code_of(via_proxy) == code_of(via_direct), via_proxy


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_same_answer(proxy, direct, name):
    def sql(endpoint):
        return QUERIES[name].format(r=remote(endpoint, "system.one"), numbers=remote(endpoint, "system.numbers"))

    via_direct = run(sql(direct))
    reason = refused_directly(via_direct)
    if reason:
        pytest.skip(f"18.16 refuses it directly too: {reason}")
    via_proxy = run(sql(proxy))
    if "ok" in via_direct:
        assert via_proxy == via_direct
    else:
        assert code_of(via_proxy) == code_of(via_direct), via_proxy
