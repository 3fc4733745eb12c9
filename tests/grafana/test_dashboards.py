"""Grafana dashboards and alert rules against the real binaries and the real ClickHouse.

- Every metric a dashboard or an alert rule uses is exported by a running aurora-proxy / aurora-ingest.
- Every ClickHouse query of the dashboards, expanded the way Grafana and the ClickHouse plugin expand it for a
  fixed range, runs through aurora-proxy natively (clickhouse-driver) and over HTTP (clickhouse-connect, which
  like the plugin reads the Native format over HTTP), and both agree on the number of rows.
- Every PromQL expression of the dashboards parses (promtool).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import subprocess
import urllib.request

import clickhouse_connect
import pytest
import yaml
from clickhouse_driver import Client

from support import grafana, sample_events
from support.cli import clickhouse_client
from support.driver import connect, run_error
from support.servers import HOST, REPO_ROOT, free_port

#: The fixed range the dashboards are replayed for, and the interval Grafana picks for it
#: (24 h at ~1000 points is 86 s, which Grafana rounds to 1 min).
#: A day after the fixtures/analytics data (October and November 2026), so the rows added here are a partition
#: of their own, dropped afterwards, and the shared dataset stays as generated.
RANGE = grafana.TimeRange(
    start=dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.timezone.utc),
    end=dt.datetime(2026, 12, 2, 0, 0, tzinfo=dt.timezone.utc),
    interval_s=60,
)
SAMPLE_ROWS = 5000

METRIC_LINE = re.compile(r"^(?:# (?:TYPE|HELP) )?([a-zA-Z_:][a-zA-Z0-9_:]*)")


def scrape(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def exported_names(text: str) -> set:
    """Names of samples and of families announced by # TYPE / # HELP lines."""
    names = set()
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if m and (not line.startswith("#") or line.startswith(("# TYPE", "# HELP"))):
            names.add(m.group(1))
    return names


# --- sample data ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def analytics_data(direct, analytics):
    """The fixtures/analytics dataset plus SAMPLE_ROWS events inside RANGE (partition 202612, dropped after)."""
    admin = Client(direct.host, port=direct.native_port)
    assert not admin.execute("SELECT count() FROM analytics.events WHERE toYYYYMM(timestamp) = 202612")[0][0]
    rows = sample_events.sample_events(RANGE.start, hours=24, count=SAMPLE_ROWS)
    admin.execute(
        "INSERT INTO analytics.events (event_id, timestamp, event_type, tenant_id, user_id, revenue, payload, "
        "schema_version) VALUES",
        rows,
    )
    yield rows
    admin.execute("ALTER TABLE analytics.events DROP PARTITION 202612")
    admin.disconnect()


def clickhouse_queries() -> list:
    return [
        pytest.param(q, id=f"{path.stem}:{q.panel}:{q.ref_id}")
        for path in grafana.dashboard_files()
        for q in grafana.queries(path)
        if q.datasource_type == grafana.CLICKHOUSE_PLUGIN
    ]


def variable_values(path_stem: str, client: Client) -> dict:
    """Every query variable of the dashboard set to all of its values (the dashboards' default, "All")."""
    path = grafana.DASHBOARDS / f"{path_stem}.json"
    values = {}
    for var in grafana.variables(path):
        sql = grafana.expand_macros(grafana.interpolate(var["query"], values), RANGE)
        values[var["name"]] = [str(row[0]) for row in client.execute(sql)]
    return values


def test_dashboards_have_clickhouse_queries_for_both_datasources():
    """The events dashboard switches between the native and the HTTP datasource, and they exist."""
    provisioned = yaml.safe_load((REPO_ROOT / "grafana/provisioning/datasources/aurora.yaml").read_text())
    by_uid = {d["uid"]: d for d in provisioned["datasources"]}
    assert by_uid["aurora-native"]["jsonData"]["protocol"] == "native"
    assert by_uid["aurora-native"]["jsonData"]["port"] == 9001
    assert by_uid["aurora-http"]["jsonData"]["protocol"] == "http"
    assert by_uid["aurora-http"]["jsonData"]["port"] == 8124
    assert by_uid["aurora-prometheus"]["type"] == "prometheus"
    events = grafana.load(grafana.DASHBOARDS / "events-analytics.json")
    ds_var = next(v for v in events["templating"]["list"] if v["type"] == "datasource")
    assert ds_var["query"] == grafana.CLICKHOUSE_PLUGIN and ds_var["current"]["value"] in by_uid
    assert len(clickhouse_queries()) >= 8
    asked = [p for p in events["panels"] if "ASK" in p.get("description", "")]
    assert asked, "no panel says it was built from an ASK"
    # Every panel of every dashboard points at a datasource that is provisioned or chosen by a variable.
    for path in grafana.dashboard_files():
        for q in grafana.queries(path):
            assert q.datasource_type in (grafana.CLICKHOUSE_PLUGIN, "prometheus"), q.where


@pytest.mark.parametrize("query", clickhouse_queries())
def test_clickhouse_query_runs_through_the_proxy(query, proxy, analytics_data):
    native = connect(proxy)
    stem = next(p.stem for p in grafana.dashboard_files() if grafana.load(p)["title"] == query.dashboard)
    values = variable_values(stem, native)
    assert "o'reilly" in values.get("tenant", ["o'reilly"]), values
    sql = grafana.expand_macros(grafana.interpolate(query.text, values), RANGE)
    assert "$" not in sql, sql

    rows = native.execute(sql)
    native.disconnect()
    assert rows, f"{query.where}: no rows on the sample data\n{sql}"

    http = clickhouse_connect.get_client(host=proxy.host, port=proxy.http_port, username="default")
    try:
        result = http.query(sql)
    finally:
        http.close()
    assert len(result.result_rows) == len(rows), f"{query.where}: native and HTTP disagree\n{sql}"


def test_time_series_queries_fill_the_range(proxy, analytics_data):
    """The bucketed queries put every sample row in a bucket of RANGE (nothing dropped, nothing outside)."""
    sql = grafana.expand_macros(
        "SELECT toDateTime(intDiv(toUInt32(timestamp), $__interval_s) * $__interval_s) AS time, count() AS n "
        "FROM analytics.events WHERE $__timeFilter(timestamp) GROUP BY time ORDER BY time",
        RANGE,
    )
    rows = connect(proxy).execute(sql)
    assert sum(n for _, n in rows) >= SAMPLE_ROWS
    assert all(t.second == 0 for t, _ in rows)
    assert rows[0][0] >= RANGE.start.replace(tzinfo=None) and rows[-1][0] < RANGE.end.replace(tzinfo=None)


def test_macros_expand_like_the_plugin():
    r = grafana.TimeRange(dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc),
                          dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc), 0)
    assert grafana.expand_macros("WHERE $__timeFilter(ts)", r) == (
        "WHERE ts >= toDateTime(1790812800) AND ts <= toDateTime(1790899200)"
    )
    assert grafana.expand_macros("$__interval_s", r) == "1"
    with pytest.raises(ValueError, match="not one the ClickHouse plugin expands"):
        grafana.expand_macros("$__timeGroupAlias(ts)", r)
    assert grafana.interpolate("IN (${t:singlequote})", {"t": ["a", "o'b"]}) == "IN ('a','o\\'b')"


# --- metric names --------------------------------------------------------------------------------------------

def drive_proxy_traffic(proxy, start_proxy, direct) -> str:
    """Make every family of the proxy's /metrics appear (a family shows only once it has a series), scrape."""
    client = connect(proxy)
    assert client.execute("SELECT 1") == [(1,)]
    run_error(proxy, "SELECT no_such_column")
    try:
        client.execute("ASK 'how many events yesterday?'")
    except Exception:  # answered with an exception until the engine is wired in; counted either way
        pass
    client.disconnect()
    with urllib.request.urlopen(f"{proxy.http_url}/?query=SELECT%201", timeout=5) as response:
        assert response.read() == b"1\n"
    # An AggregateFunction state makes that native connection a byte relay (aurora_proxy_native_passthrough_total).
    relay = clickhouse_client(proxy, query="SELECT uniqState(number) FROM numbers(10) FORMAT Null")
    assert relay.returncode == 0, relay.stderr
    # A client that sends garbage instead of a Hello (aurora_proxy_protocol_errors_total).
    with socket.create_connection((proxy.host, proxy.native_port), timeout=5) as s:
        s.sendall(b"\x63" * 64)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
    text = scrape(proxy.host, proxy.metrics_port)

    # A second proxy whose ClickHouse is gone (aurora_proxy_upstream_connect_errors_total).
    dead = free_port()
    lonely = start_proxy(f"127.0.0.1:{dead}", f"http://127.0.0.1:{dead}")
    with pytest.raises(Exception):
        connect(lonely.endpoint).execute("SELECT 1")
    return text + scrape(HOST, lonely.metrics_port)


def missing(referenced: dict, exported: set, prefix: str) -> dict:
    return {n: where for n, where in referenced.items() if n.startswith(prefix) and n not in exported}


@pytest.mark.proxy_only
def test_proxy_metrics_used_by_dashboards_and_alerts_are_exported(proxy, start_proxy, direct):
    referenced = grafana.referenced_metric_names()
    assert any(n.startswith("aurora_proxy_") for n in referenced)
    exported = exported_names(drive_proxy_traffic(proxy, start_proxy, direct))
    absent = missing(referenced, exported, "aurora_proxy_")
    assert not absent, f"used in grafana/ or the alert rules but not exported by aurora-proxy: {absent}"


@pytest.mark.proxy_only
def test_ask_metrics_used_by_dashboards_and_alerts_are_exported(proxy, start_proxy, direct):
    referenced = grafana.referenced_metric_names()
    exported = exported_names(drive_proxy_traffic(proxy, start_proxy, direct))
    assert any(n.startswith("aurora_ask_") for n in referenced)
    absent = missing(referenced, exported, "aurora_ask_")
    assert not absent, f"used in grafana/ or the alert rules but not exported by aurora-proxy: {absent}"


# The aurora_ingest_* names are checked against a daemon running a pipeline, with a real broker:
# tests/ingest/test_ingest_dashboard_metrics.py.


def test_no_metric_outside_the_known_families():
    """Every referenced name belongs to a binary the test checks, and `up` jobs exist in prometheus.yml."""
    referenced = grafana.referenced_metric_names()
    strays = [n for n in referenced if not n.startswith(("aurora_proxy_", "aurora_ask_", "aurora_ingest_"))]
    assert not strays, strays
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for _, alert, expr in grafana.alert_rules():
        for job in re.findall(r'up\{job="([^"]+)"\}', expr):
            assert job in jobs, f"{alert}: job {job} is not scraped"


# --- PromQL syntax --------------------------------------------------------------------------------------------

GRAFANA_PROMQL_VARIABLES = {"instance": ".*", "pipeline": ".*"}
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s"}


def test_dashboard_promql_parses(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh installs Debian's prometheus package, which ships it"
    rules = []
    for i, q in enumerate(grafana.promql_of_dashboards()):
        expr = q.text
        for k, v in GRAFANA_RANGES.items():
            expr = expr.replace(k, v)
        expr = grafana.interpolate(expr, GRAFANA_PROMQL_VARIABLES)
        # Variable queries use Grafana's label_values(selector, label): the selector is the PromQL part.
        expr = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", expr.strip())
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    assert len(rules) >= 20
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
