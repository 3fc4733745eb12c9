"""Event envelopes and a producer for the ingest tests and benchmark (Python confluent-kafka, real librdkafka).

    python tests/support/events.py produce --brokers 127.0.0.1:9092 --topic events --count 1000000 [--seed 1]
    python tests/support/events.py jsonl --count 1000000 > events.json     # the same events, one per line
    python tests/support/events.py prefill --brokers … --topic events --count 1000000 --jsonl events.json  # both

Events are deterministic for a seed: `event(i, seed)` is the i-th one, so a test knows every event_id it sent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import uuid

TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
TYPES = ["page_view", "signup", "add_to_cart", "purchase", "refund"]
BASE_TS = 1_790_000_000  # 2026-09-21


def event_id(i: int, seed: int = 0) -> str:
    # Hashed, not sequential: ClickHouse 18.16's uniqExact(UUID) degrades to quadratic time on ids that share
    # their high 64 bits (measured: minutes for 1M such ids).
    return str(uuid.UUID(bytes=hashlib.md5(f"{seed}:{i}".encode()).digest(), version=4))


def event(i: int, seed: int = 0) -> dict:
    rnd = random.Random(i * 7919 + seed)
    kind = TYPES[rnd.randrange(len(TYPES))]
    payload = {"user_id": f"u{rnd.randrange(100000)}", "page": f"/p/{rnd.randrange(1000)}"}
    if kind in ("purchase", "refund"):
        payload["amount"] = round(rnd.uniform(1, 500), 2)
    ts = BASE_TS + i // 10
    return {
        "event_id": event_id(i, seed),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
        "event_type": kind,
        "tenant_id": TENANTS[i % len(TENANTS)],
        "payload": payload,
        "schema_version": 1,
    }


def encode(i: int, seed: int = 0) -> bytes:
    return json.dumps(event(i, seed), separators=(",", ":")).encode()


def producer(brokers: str, extra: dict | None = None):
    from confluent_kafka import Producer

    conf = {
        "bootstrap.servers": brokers,
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1000000,
        "compression.type": "none",
        "enable.idempotence": False,
        "acks": "all",
    }
    conf.update(extra or {})
    return Producer(conf)


def produce(brokers: str, topic: str, messages, extra: dict | None = None, partition_of=None) -> int:
    """Sends (key, value) pairs; returns how many were acknowledged. Raises if any delivery failed."""
    p = producer(brokers, extra)
    errors = []
    acked = [0]

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)
        else:
            acked[0] += 1

    for n, (key, value) in enumerate(messages):
        kwargs = {"key": key, "value": value, "on_delivery": on_delivery}
        if partition_of is not None:
            kwargs["partition"] = partition_of(n)
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        if n % 10000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    if remaining or errors:
        raise RuntimeError(f"{remaining} undelivered, errors: {errors[:3]}")
    return acked[0]


def envelope_messages(count: int, seed: int = 0, start: int = 0):
    for i in range(start, start + count):
        e = event(i, seed)
        yield e["tenant_id"].encode(), json.dumps(e, separators=(",", ":")).encode()


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("produce")
    pr.add_argument("--brokers", required=True)
    pr.add_argument("--topic", required=True)
    pr.add_argument("--count", type=int, required=True)
    pr.add_argument("--seed", type=int, default=0)
    pf = sub.add_parser("prefill")
    pf.add_argument("--brokers", required=True)
    pf.add_argument("--topic", required=True)
    pf.add_argument("--count", type=int, required=True)
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--jsonl", required=True)
    js = sub.add_parser("jsonl")
    js.add_argument("--count", type=int, required=True)
    js.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.cmd == "produce":
        t = time.monotonic()
        n = produce(args.brokers, args.topic, envelope_messages(args.count, args.seed))
        print(f"produced {n} events in {time.monotonic() - t:.1f}s", file=sys.stderr)
    elif args.cmd == "prefill":
        with open(args.jsonl, "wb") as out:
            def tee():
                for key, value in envelope_messages(args.count, args.seed):
                    out.write(value)
                    out.write(b"\n")
                    yield key, value

            t = time.monotonic()
            n = produce(args.brokers, args.topic, tee())
        print(f"produced {n} events in {time.monotonic() - t:.1f}s", file=sys.stderr)
    else:
        out = sys.stdout.buffer
        for i in range(args.count):
            out.write(encode(i, args.seed))
            out.write(b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
