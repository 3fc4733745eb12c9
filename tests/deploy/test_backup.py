"""deploy/backup against the real ClickHouse of the test session (18.16): back up an events table of the
analytics schema, lose it (DROP, TRUNCATE, later writes), restore, and find exactly the rows that were saved."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest
from clickhouse_driver import Client

from support import sample_events
from support.servers import DIRECT_MODE, REPO_ROOT

BACKUP_SH = REPO_ROOT / "deploy" / "backup" / "backup.sh"
RESTORE_SH = REPO_ROOT / "deploy" / "backup" / "restore.sh"
COLUMNS = "event_id, timestamp, event_type, tenant_id, user_id, revenue, payload, schema_version"

pytestmark = pytest.mark.skipif(DIRECT_MODE, reason="not about the proxy; runs once, in the normal mode")


def run(script, *args, endpoint) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLICKHOUSE_HOST=endpoint.host, CLICKHOUSE_PORT=str(endpoint.native_port),
               CLICKHOUSE_USER="default")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120)


def everything(client: Client, table: str) -> list:
    return client.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY event_id")


@pytest.fixture
def events(db, direct):
    """db.events (the analytics.events schema) with rows in two months, written in three inserts (several parts)."""
    client = Client(direct.host, port=direct.native_port)
    client.execute(sample_events.EVENTS_DDL.replace("analytics.events", f"{db}.events"))
    october = sample_events.sample_events(dt.datetime(2026, 10, 1), hours=48, count=3000, seed=1)
    november = sample_events.sample_events(dt.datetime(2026, 11, 1), hours=24, count=1500, seed=2)
    for batch in (october[:2000], october[2000:], november):
        client.execute(f"INSERT INTO {db}.events ({COLUMNS}) VALUES", batch)
    yield client, f"{db}.events"
    client.disconnect()


def test_backup_drop_restore(events, direct, clickhouse, db, tmp_path):
    client, table = events
    saved = everything(client, table)
    assert len(saved) == 4500

    made = run(BACKUP_SH, "--name", "b1", str(tmp_path), table, endpoint=direct)
    assert made.returncode == 0, made.stderr
    manifest = (tmp_path / "b1" / "manifest.tsv").read_text().splitlines()
    assert manifest[1].split("\t")[:3] == [db, "events", "4500"], manifest
    assert int(manifest[1].split("\t")[3]) >= 3  # the three inserts' parts (merges may have joined some)
    assert "ENGINE = MergeTree" in (tmp_path / "b1" / db / "events" / "schema.sql").read_text()

    # Rows written after the backup are not part of it.
    client.execute(f"INSERT INTO {table} ({COLUMNS}) VALUES",
                   sample_events.sample_events(dt.datetime(2026, 12, 1), hours=1, count=10, seed=3))
    client.execute(f"DROP TABLE {table}")

    restored = run(RESTORE_SH, str(tmp_path / "b1"), endpoint=direct)
    assert restored.returncode == 0, restored.stderr
    assert "created from schema.sql" in restored.stderr
    assert everything(client, table) == saved

    # The FREEZE snapshot was removed from the server's shadow/ directory.
    shadow = clickhouse.workdir / "data" / "shadow"
    assert sorted(p.name for p in shadow.iterdir()) == ["increment.txt"]


def test_restore_replace_after_truncate_and_new_writes(events, direct, tmp_path):
    client, table = events
    saved = everything(client, table)
    made = run(BACKUP_SH, "--name", "nightly", str(tmp_path), table.split(".")[0], endpoint=direct)
    assert made.returncode == 0, made.stderr

    client.execute(f"TRUNCATE TABLE {table}")
    client.execute(f"INSERT INTO {table} ({COLUMNS}) VALUES",
                   sample_events.sample_events(dt.datetime(2026, 10, 1), hours=1, count=7, seed=4))
    restored = run(RESTORE_SH, "--replace", str(tmp_path / "nightly"), table, endpoint=direct)
    assert restored.returncode == 0, restored.stderr
    assert everything(client, table) == saved

    # Without --replace the parts are added to what is there: restoring twice doubles the rows.
    again = run(RESTORE_SH, str(tmp_path / "nightly"), table, endpoint=direct)
    assert again.returncode == 0, again.stderr
    assert client.execute(f"SELECT count() FROM {table}") == [(2 * len(saved),)]


def test_errors_are_clear(direct, tmp_path, db):
    missing = run(BACKUP_SH, str(tmp_path), f"{db}.no_such_table", endpoint=direct)
    assert missing.returncode != 0 and "not a MergeTree table" in missing.stderr
    not_a_backup = run(RESTORE_SH, str(tmp_path), endpoint=direct)
    assert not_a_backup.returncode != 0 and "not a backup.sh backup" in not_a_backup.stderr
