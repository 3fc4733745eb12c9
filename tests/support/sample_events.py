"""Sample rows for `analytics.events` (schema of the project's contracts), made deterministically.

Used where a test needs the analytics schema with data in a known time range of its own (the Grafana dashboards'
queries add a partition to the fixtures/analytics dataset; the backup tests use a database of their own).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS analytics.events
(
    event_id UUID,
    timestamp DateTime,
    event_type String,
    tenant_id String,
    user_id String,
    revenue Float64,
    payload String,
    schema_version UInt16
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, event_type, timestamp)
"""

TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "o'reilly"]
#: Event types with their weights: a plausible funnel.
EVENT_TYPES = [("page_view", 60), ("add_to_cart", 15), ("signup", 8), ("purchase", 12), ("refund", 5)]


def sample_events(start: dt.datetime, hours: int, count: int, seed: int = 20261001) -> list:
    """`count` events spread over `hours` from `start` (UTC), as tuples in column order."""
    rng = random.Random(seed)
    types, weights = zip(*EVENT_TYPES)
    rows = []
    for _ in range(count):
        ts = start + dt.timedelta(seconds=rng.randrange(hours * 3600))
        event_type = rng.choices(types, weights)[0]
        tenant = rng.choice(TENANTS)
        payload = {}
        if event_type != "page_view" or rng.random() < 0.7:
            payload["user_id"] = f"u{rng.randrange(500)}"
        if event_type in ("purchase", "refund"):
            payload["amount"] = round(rng.uniform(1, 300), 2)
        rows.append((
            uuid.UUID(int=rng.getrandbits(128), version=4),
            ts.replace(tzinfo=None),
            event_type,
            tenant,
            payload.get("user_id", ""),
            float(payload.get("amount", 0.0)),
            json.dumps(payload),
            1,
        ))
    return rows
