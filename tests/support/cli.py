"""Run Debian's clickhouse-client against an endpoint and normalise what differs by address only."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from typing import Optional, Sequence

from .servers import Endpoint

CLIENT_TIMEOUT_S = 60


@dataclasses.dataclass
class CliResult:
    returncode: int
    stdout: bytes
    #: stderr with the endpoint's port replaced by PORT (messages say "Received from 127.0.0.1:<port>").
    stderr: str

    def user_view(self):
        """What a user compares between two runs: exit code, output bytes, messages."""
        return self.returncode, self.stdout, self.stderr


def normalise(text: str, endpoint: Endpoint) -> str:
    text = text.replace(f":{endpoint.native_port}", ":PORT")
    return text


def clickhouse_client(
    endpoint: Endpoint,
    *args: str,
    query: Optional[str] = None,
    stdin: Optional[bytes] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
    extra: Sequence[str] = (),
) -> CliResult:
    argv = ["clickhouse-client", "--host", endpoint.host, "--port", str(endpoint.native_port)]
    if user is not None:
        argv += ["--user", user]
    if password is not None:
        argv += ["--password", password]
    if database is not None:
        argv += ["--database", database]
    argv += list(args) + list(extra)
    if query is not None:
        argv += ["--query", query]
    proc = subprocess.run(
        argv,
        input=stdin if stdin is not None else b"",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=CLIENT_TIMEOUT_S,
    )
    return CliResult(proc.returncode, proc.stdout, normalise(proc.stderr.decode(errors="replace"), endpoint))


def exception_code(stderr: str) -> Optional[int]:
    m = re.search(r"Code: (\d+)\.", stderr)
    return int(m.group(1)) if m else None
