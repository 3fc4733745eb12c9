"""Every aurora_ingest_* metric the Grafana dashboards and the alert rules use is on a running daemon's /metrics
once a pipeline has run: events in (one of them poison), rows inserted, lag reported. Labelled families have no
series before a pipeline creates them, so the check needs a real broker and a real pipeline."""

from __future__ import annotations

import re

import pytest

from support import grafana
from support.events import envelope_messages, produce
from support.ingest import wait_until

NAME = re.compile(r"^(?:# (?:TYPE|HELP) )?([a-zA-Z_:][a-zA-Z0-9_:]*)")


@pytest.mark.timeout(120)
def test_dashboard_and_alert_metrics_are_exported(kafka, topic, db, ch, start_ingest):
    wanted = {n: where for n, where in grafana.referenced_metric_names().items() if n.startswith("aurora_ingest_")}
    assert wanted
    produce(kafka.brokers, topic, list(envelope_messages(200, seed=3)) + [(b"poison", b"{not json")])
    daemon = start_ingest(
        [{"name": "dash", "topics": [topic], "table": f"{db}.events", "batch_max_wait": "300ms"}]
    )
    wait_until(lambda: ch.execute(f"SELECT count() FROM {db}.events")[0][0] >= 200, 60, "200 rows")
    wait_until(lambda: daemon.pipeline("dash")["lag"] is not None, 30, "lag reported")
    exported = set()
    for line in daemon.metrics().splitlines():
        m = NAME.match(line)
        if m:
            exported.add(m.group(1))
    absent = {n: where for n, where in wanted.items() if n not in exported}
    assert not absent, f"used in grafana/ or the alert rules but not exported by aurora-ingest: {absent}"
