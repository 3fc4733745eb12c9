"""Hostile-client tests: what an attacker sends to Aurora's programs, and the safe outcome asserted.

The aurora-ingest cases use the ingest fixtures (support/ingest_fixtures.py): `kafka`, `topic`, `start_ingest`, `ch`,
`ingest_binary_present`.
"""

from support.ingest_fixtures import ch, ingest_binary_present, kafka, start_ingest, topic  # noqa: F401
