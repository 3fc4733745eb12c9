"""Metric samples the proxy must expose on /metrics, kept in one place so tests follow renames.

Each entry is (metric name, labels that the sample must carry); other labels may be present too.
The brief first named `aurora_proxy_native_connections_total` and `aurora_proxy_queries_total{kind="sql",outcome="ok"}`;
the proxy as built labels by protocol instead, and these follow it.
"""

#: Counter of accepted native-protocol client connections.
NATIVE_CONNECTIONS_TOTAL = ("aurora_proxy_connections_total", {"protocol": "native"})

#: Counter of statements by kind and outcome: ordinary SQL over the native protocol that succeeded.
QUERIES_SQL_OK = ("aurora_proxy_queries_total", {"kind": "sql", "outcome": "ok", "protocol": "native"})
