"""aurora-ingest's API as an attacker sees it (issue 11, items 1 and 2): a real daemon, a real broker, the session
ClickHouse. Each attack asserts the safe outcome a user would check — the HTTP status, that no library was loaded
and no command ran (marker files), that no table was created — and the allowed path still delivers.

On the main of 2026-12-02 every attack here succeeded: /pipelines answered without a token, `plugin.library.paths`
made librdkafka dlopen() the posted library, and `partition_by` was pasted into CREATE TABLE.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import time
import uuid

import pytest

from support.events import envelope_messages, produce
from support.ingest import ingest_binary, wait_until
from support.servers import free_port, port_accepts

pytestmark = pytest.mark.usefixtures("ingest_binary_present")

# How long a refused pipeline gets to do harm anyway before the markers are checked (a consumer is created
# within milliseconds of a pipeline starting; librdkafka loads plugins when the property is set).
GRACE_S = 3.0


def build_marker_library(tmp_path, marker, name: str = "libaurora_probe.so") -> str:
    """A real shared library whose constructor writes `marker` when anything loads it."""
    source = tmp_path / "probe.c"
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void aurora_probe(void) {\n"
        "    FILE *f = fopen(MARKER, \"w\");\n"
        "    if (f) { fputs(\"loaded\\n\", f); fclose(f); }\n"
        "}\n"
    )
    library = tmp_path / name
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)],
                   check=True, timeout=60)
    return str(library)


def marker_library(tmp_path, marker) -> str:
    """The probe library for `marker`, after checking that a library built the same way does write its marker
    when loaded (here, with ctypes): an absent marker later means the library was never loaded."""
    check_marker = tmp_path / "self-check.marker"
    ctypes.CDLL(build_marker_library(tmp_path, check_marker, "libaurora_probe_check.so"))
    assert check_marker.exists(), "the probe library does not write its marker when loaded"
    return build_marker_library(tmp_path, marker)


def spec(name: str, topic: str, table: str, **extra) -> dict:
    return {"name": name, "topics": [topic], "table": table, "batch_max_wait": "200ms", **extra}


def tables_in(ch, database: str) -> list:
    return [r[0] for r in ch.execute("SELECT name FROM system.tables WHERE database = %(d)s", {"d": database})]


def run_with_config(tmp_path, text: str) -> subprocess.CompletedProcess:
    config = tmp_path / f"operator-{uuid.uuid4().hex[:6]}.toml"
    config.write_text(text)
    return subprocess.run([str(ingest_binary()), "--config", str(config), "run"], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL), config


# --- librdkafka properties that load code or run commands ------------------------------------------------------


def test_a_posted_plugin_library_is_refused_and_never_loaded(tmp_path, db, ch, start_ingest, topic):
    marker = tmp_path / "plugin-loaded.marker"
    library = marker_library(tmp_path, marker)
    daemon = start_ingest([])
    status, body = daemon.request("POST", "/pipelines", spec("p", topic, f"{db}.p",
                                                             kafka_options={"plugin.library.paths": library}))
    assert status == 400, body
    assert "plugin.library.paths" in body["error"]
    time.sleep(GRACE_S)
    assert not marker.exists(), "the daemon loaded the posted library"
    assert "p" not in daemon.pipelines_view()
    assert tables_in(ch, db) == []


def test_a_posted_kinit_command_is_refused_and_never_run(tmp_path, db, start_ingest, topic):
    marker = tmp_path / "kinit-ran.marker"
    daemon = start_ingest([])
    options = {
        "sasl.kerberos.kinit.cmd": f"touch {marker}",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "GSSAPI",
        "sasl.kerberos.min.time.before.relogin": "1",
    }
    status, body = daemon.request("POST", "/pipelines", spec("k", topic, f"{db}.k", kafka_options=options))
    assert status == 400, body
    assert "kafka_options" in body["error"]
    time.sleep(GRACE_S)
    assert not marker.exists(), "the daemon ran the posted command"
    assert "k" not in daemon.pipelines_view()


@pytest.mark.parametrize("key, value", [
    ("ssl.engine.location", "/tmp/engine.so"),
    ("ssl.key.location", "/etc/shadow"),
    ("ssl.ca.location", "/etc/shadow"),
    ("sasl.oauthbearer.token.endpoint.url", "http://169.254.169.254/"),
    ("offset.store.path", "/tmp/aurora-offsets"),
    ("interceptors", "x"),
    ("group.id", "someone-elses-group"),
    ("enable.auto.commit", "true"),
    ("bootstrap.servers", "attacker:9092"),
    ("debug", "all"),
])
def test_the_api_accepts_tuning_properties_only(db, start_ingest, topic, key, value):
    daemon = start_ingest([])
    status, body = daemon.request("POST", "/pipelines", spec("o", topic, f"{db}.o", kafka_options={key: value}))
    assert status == 400, body
    assert key in body["error"], body


def test_the_operator_config_refuses_code_loading_keys_at_start(tmp_path, db):
    marker = tmp_path / "operator-plugin.marker"
    library = marker_library(tmp_path, marker)
    for text, key in [
        (f'[kafka.options]\n"plugin.library.paths" = "{library}"\n', "plugin.library.paths"),
        (f'[[pipelines]]\nname = "p"\ntopics = ["t"]\ntable = "{db}.p"\n'
         f'kafka_options = {{ "sasl.kerberos.kinit.cmd" = "touch {marker}" }}\n', "sasl.kerberos.kinit.cmd"),
    ]:
        done, config = run_with_config(tmp_path, text)
        assert done.returncode == 2, (done.returncode, done.stderr)
        assert key in done.stderr and str(config) in done.stderr, done.stderr
    assert not marker.exists()


# --- authentication of the API ------------------------------------------------------------------------------------


def test_pipelines_need_the_token_health_and_metrics_do_not(db, start_ingest, topic):
    daemon = start_ingest([])
    attempts = [
        ("GET", "/pipelines", None),
        ("POST", "/pipelines", spec("a", topic, f"{db}.a")),
        ("DELETE", "/pipelines/a", None),
    ]
    for method, path, body in attempts:
        for token, headers in [(None, None), ("wrong-token-0123456789", None), (daemon.token[:-1], None),
                               (None, {"authorization": f"Basic {daemon.token}"}),
                               (None, {"authorization": daemon.token})]:
            status, answer = daemon.request(method, path, body, token=token, headers=headers)
            assert status == 401, (method, path, token, headers, status, answer)
            assert "error" in answer
    assert "a" not in daemon.pipelines_view()
    assert daemon.request("GET", "/health", token=None)[0] == 200
    assert "aurora_ingest_" in daemon.metrics(), "/metrics answers without a token"
    assert daemon.token not in daemon.log(10_000), "the token is never logged"


def test_without_a_configured_token_the_api_is_closed_but_config_pipelines_run(db, ch, kafka, start_ingest, topic):
    sent = 100
    produce(kafka.brokers, topic, envelope_messages(sent, seed=3))
    daemon = start_ingest([spec("configured", topic, f"{db}.configured")], token=None)
    status, body = daemon.request("GET", "/pipelines", token="anything-at-all-0123")
    assert status == 403, body
    assert "api_token_env" in body["error"] and "api_token_file" in body["error"], body
    status, body = daemon.request("POST", "/pipelines", spec("b", topic, f"{db}.b"), token=None)
    assert status == 403, body
    wait_until(lambda: ch.execute(f"SELECT count() FROM {db}.configured")[0][0] >= sent, 60,
               "the config file's pipeline delivering")
    assert "no API token configured" in daemon.log(200)


def test_the_cli_sends_the_token_of_its_config(db, start_ingest, topic):
    daemon = start_ingest([])
    shown = daemon.cli("status")
    assert shown.returncode == 0, shown.stderr
    refused = daemon.cli("status", config=False)
    assert refused.returncode != 0
    assert "--config" in refused.stderr and "token" in refused.stderr, refused.stderr
    assert daemon.token not in refused.stderr + shown.stdout + shown.stderr


# --- SQL injection through pipeline specs -------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [
    {"partition_by": "tuple() ORDER BY tuple() SETTINGS index_granularity = 3 --"},
    {"partition_by": "toYYYYMM(timestamp) SETTINGS index_granularity = 3"},
    {"partition_by": "toYYYYMM(timestamp); DROP DATABASE default"},
    {"partition_by": "file('/etc/passwd')"},
    {"order_by": ["tenant_id) SETTINGS index_granularity = 3 --"]},
    {"order_by": ["tenant_id", "timestamp) PARTITION BY tuple() --"]},
    {"order_by": ["`tenant_id`) SETTINGS index_granularity = 3 --`"]},
])
def test_key_injections_are_refused_and_create_nothing(db, ch, start_ingest, topic, keys):
    daemon = start_ingest([])
    status, body = daemon.request("POST", "/pipelines", spec("inj", topic, f"{db}.inj", **keys))
    assert status == 400, body
    assert next(iter(keys)) in body["error"], body
    time.sleep(1.0)
    assert tables_in(ch, db) == [], "a table was created"
    assert "inj" not in daemon.pipelines_view()


@pytest.mark.parametrize("table", [
    "system.x", "SYSTEM.x", "information_schema.x", "INFORMATION_SCHEMA.x",
    "{db}.aurora_ingest_ledger", "{db}.aurora_stage_other", "{db}.events_dead_letters", "{db}.events_per_minute",
])
def test_system_and_ledger_tables_are_no_targets(db, ch, start_ingest, topic, table):
    daemon = start_ingest([])
    status, body = daemon.request("POST", "/pipelines", spec("sys", topic, table.format(db=db)))
    assert status == 400, body
    assert "table" in body["error"], body
    time.sleep(1.0)
    assert ch.execute("SELECT count() FROM system.tables WHERE database = 'system' AND name = 'x'")[0][0] == 0
    assert tables_in(ch, db) == []


# --- what is allowed keeps working --------------------------------------------------------------------------------


def test_a_pipeline_with_the_token_tuning_options_and_key_expressions_delivers(db, ch, kafka, start_ingest, topic):
    sent = 500
    produce(kafka.brokers, topic, envelope_messages(sent, seed=11))
    daemon = start_ingest([])
    table = f"{db}.allowed"
    status, body = daemon.request("POST", "/pipelines", spec(
        "allowed", topic, table,
        kafka_options={"fetch.wait.max.ms": "100", "session.timeout.ms": "6000", "socket.keepalive.enable": "true"},
        partition_by="toYYYYMMDD(timestamp)",
        order_by=["tenant_id", "toStartOfHour(timestamp)", "cityHash64(event_type)"],
    ))
    assert status == 201, body
    wait_until(lambda: daemon.pipeline("allowed")["state"] == "running", 30,
               f"the pipeline running:\n{daemon.log()}")
    wait_until(lambda: ch.execute(f"SELECT count() FROM {table}")[0][0] >= sent, 60, "all rows")
    assert ch.execute(f"SELECT count(), uniqExact(event_id) FROM {table}")[0] == (sent, sent)
    create = ch.execute(f"SHOW CREATE TABLE {table}")[0][0]
    assert "PARTITION BY toYYYYMMDD(timestamp)" in create, create
    assert "ORDER BY (tenant_id, toStartOfHour(timestamp), cityHash64(event_type))" in create, create
    assert "index_granularity = 8192" in create, create
    status, body = daemon.request("DELETE", "/pipelines/allowed")
    assert status == 200, body



def test_an_api_beyond_loopback_is_warned_about_at_start(tmp_path):
    port = free_port()
    token = tmp_path / "token"
    token.write_text("a-token-of-the-right-length-0123\n")
    config = tmp_path / "wide.toml"
    config.write_text(f'api_listen = "0.0.0.0:{port}"\napi_token_file = "{token}"\n')
    log = tmp_path / "wide.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(ingest_binary()), "--config", str(config), "run"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_accepts(port) or proc.poll() is not None, 15, "the API listening")
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = log.read_text()
    assert "not a loopback address" in text, text
    assert "a-token-of-the-right-length" not in text
