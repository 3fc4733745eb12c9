#!/usr/bin/env python3
"""Produces realistic event envelopes into a Kafka topic, keyed by tenant, at a steady rate.

    generate_events.py [--bootstrap 127.0.0.1:9092] [--topic events] [--rate 50] [--count N | --duration S]
                       [--tenants acme,globex,...] [--seed N] [--delivery-timeout S]

Each message value is the envelope of the project's contracts:
    {"event_id": "<uuid>", "timestamp": "<RFC 3339, UTC>", "event_type": "purchase", "tenant_id": "acme",
     "payload": {"user_id": "u42", "amount": 19.99, ...}, "schema_version": 1}
and its key is the tenant_id, so one tenant's events stay in one partition, in order.
Event types follow a shop funnel (page_view, add_to_cart, signup, purchase, refund); purchase and refund carry
payload.amount. Runs until --count messages or --duration seconds (forever when neither is given, until
SIGINT/SIGTERM), then flushes; exits 1 if any message was not delivered. Needs confluent-kafka.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import signal
import sys
import time
import uuid

DEFAULT_TENANTS = "acme,globex,initech,umbrella,hooli,stark"
#: (event type, weight): roughly a shop's funnel.
EVENT_TYPES = [("page_view", 60), ("add_to_cart", 15), ("signup", 8), ("purchase", 12), ("refund", 5)]
PAGES = ["/", "/pricing", "/docs", "/blog", "/product/1", "/product/2", "/cart", "/checkout"]


def envelope(rng: random.Random, tenants: list, now: dt.datetime) -> dict:
    types, weights = zip(*EVENT_TYPES)
    event_type = rng.choices(types, weights)[0]
    tenant = rng.choice(tenants)
    payload: dict = {"user_id": f"u{rng.randrange(1, 2000)}"}
    if event_type == "page_view":
        payload["page"] = rng.choice(PAGES)
        if rng.random() < 0.3:  # anonymous visitors
            del payload["user_id"]
    elif event_type == "add_to_cart":
        payload["sku"] = f"sku-{rng.randrange(1, 300)}"
    elif event_type in ("purchase", "refund"):
        payload["amount"] = round(rng.lognormvariate(3.5, 0.8), 2)
        payload["currency"] = "EUR"
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event_type": event_type,
        "tenant_id": tenant,
        "payload": payload,
        "schema_version": 1,
    }


def parse_args(argv: list) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers (default %(default)s)")
    p.add_argument("--topic", default="events", help="topic (default %(default)s)")
    p.add_argument("--rate", type=float, default=50.0, help="events per second (default %(default)s)")
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    p.add_argument("--tenants", default=DEFAULT_TENANTS, help="comma-separated tenant ids (default %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="random seed (event ids too) for reproducible runs")
    p.add_argument("--delivery-timeout", type=float, default=30.0,
                   help="seconds a message may wait for the broker before it counts as failed (default %(default)s)")
    args = p.parse_args(argv)
    if args.rate <= 0:
        p.error("--rate must be positive")
    if args.count < 0 or args.duration < 0 or args.delivery_timeout <= 0:
        p.error("--count and --duration must not be negative, --delivery-timeout must be positive")
    args.tenants = [t for t in (s.strip() for s in args.tenants.split(",")) if t]
    if not args.tenants:
        p.error("--tenants needs at least one tenant id")
    return args


def main(argv: list) -> int:
    args = parse_args(argv)
    try:
        from confluent_kafka import KafkaException, Producer
    except ImportError:
        print("generate_events.py needs confluent-kafka (pip install confluent-kafka)", file=sys.stderr)
        return 2

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 20,
        "message.timeout.ms": int(args.delivery_timeout * 1000),
        "client.id": "aurora-generate-events",
    })
    delivered = failed = 0
    first_error = None

    def on_delivery(err, msg):
        nonlocal delivered, failed, first_error
        if err is None:
            delivered += 1
        else:
            failed += 1
            first_error = first_error or str(err)

    rng = random.Random(args.seed)
    interval = 1.0 / args.rate
    start = time.monotonic()
    sent = 0
    last_report = start
    while not stopping:
        if args.count and sent >= args.count:
            break
        elapsed = time.monotonic() - start
        if args.duration and elapsed >= args.duration:
            break
        # Steady rate: event n leaves at start + n / rate (no drift, no bursts after a slow flush).
        wait = start + sent * interval - time.monotonic()
        if wait > 0:
            producer.poll(min(wait, 0.5))
            continue
        event = envelope(rng, args.tenants, dt.datetime.now(dt.timezone.utc))
        try:
            producer.produce(args.topic, key=event["tenant_id"].encode(), value=json.dumps(event).encode(),
                             on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.1)
            continue
        except KafkaException as exc:
            print(f"generate_events.py: cannot produce: {exc}", file=sys.stderr)
            return 1
        sent += 1
        producer.poll(0)
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            print(f"generate_events.py: {sent} sent, {delivered} delivered, {failed} failed", file=sys.stderr)

    remaining = producer.flush(args.delivery_timeout + 5)
    if remaining:
        failed += remaining
        first_error = first_error or f"{remaining} messages still queued after {args.delivery_timeout + 5:.0f} s"
    print(f"generate_events.py: {sent} sent, {delivered} delivered, {failed} failed to {args.topic} "
          f"in {time.monotonic() - start:.1f} s", file=sys.stderr)
    if failed:
        print(f"generate_events.py: first error: {first_error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
