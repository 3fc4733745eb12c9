"""clickhouse-driver (Python, native protocol) helpers: connect to an endpoint, describe errors as a user sees them."""

from __future__ import annotations

from clickhouse_driver import Client, errors

from .servers import Endpoint


def connect(endpoint: Endpoint, **kwargs) -> Client:
    kwargs.setdefault("connect_timeout", 5)
    kwargs.setdefault("send_receive_timeout", 30)
    return Client(endpoint.host, port=endpoint.native_port, **kwargs)


def error_view(exc: BaseException, endpoint: Endpoint):
    """(exception class, ClickHouse code, message without the stack trace and without the port)."""
    message = getattr(exc, "message", str(exc))
    message = message.split("Stack trace:")[0].strip()
    message = message.replace(f":{endpoint.native_port}", ":PORT")
    return type(exc).__name__, getattr(exc, "code", None), message


def run_error(endpoint: Endpoint, query: str, **client_kwargs):
    """Run a query that must fail; return its error_view."""
    client = connect(endpoint, **client_kwargs)
    try:
        client.execute(query)
    except errors.Error as exc:
        return error_view(exc, endpoint)
    finally:
        client.disconnect()
    raise AssertionError(f"query did not fail on {endpoint}: {query}")
