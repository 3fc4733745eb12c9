"""Start and stop the processes under test: a private ClickHouse and aurora-proxy.

ClickHouse is started through scripts/clickhouse.sh (the same script people use by hand);
the proxy is started from its binary with the stable command-line surface of DESIGN.md.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
CLICKHOUSE_SH = REPO_ROOT / "scripts" / "clickhouse.sh"
HOST = "127.0.0.1"

#: AURORA_TEST_DIRECT=1: every "proxy" is ClickHouse itself (to check the tests, not the proxy).
DIRECT_MODE = os.environ.get("AURORA_TEST_DIRECT") == "1"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where a client connects: ClickHouse itself, or the proxy in front of it."""

    host: str
    native_port: int
    http_port: int
    #: None when the endpoint is ClickHouse (it has no Aurora metrics).
    metrics_port: Optional[int] = None
    #: True when this is a running aurora-proxy (False in direct mode).
    is_proxy: bool = False

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


def free_port() -> int:
    """A port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


class ClickHouseServer:
    """A clickhouse-server started by scripts/clickhouse.sh in its own directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.tcp_port = free_port()
        self.http_port = free_port()
        while self.http_port == self.tcp_port:
            self.http_port = free_port()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(HOST, self.tcp_port, self.http_port)

    def start(self) -> None:
        # information: server logs a client asks for with send_logs_level reach it
        # (18.16 only forwards what its own logger level lets through).
        env = dict(os.environ)
        env.setdefault("AURORA_CH_LOG_LEVEL", "information")
        subprocess.run(
            [str(CLICKHOUSE_SH), "start", str(self.workdir), str(self.tcp_port), str(self.http_port)],
            check=True,
            env=env,
            timeout=60,
        )

    def stop(self) -> None:
        # 18.16 waits ~10 s for idle client connections on SIGTERM; test data need no clean shutdown.
        env = dict(os.environ, AURORA_CH_STOP_TIMEOUT_S="2")
        subprocess.run([str(CLICKHOUSE_SH), "stop", str(self.workdir)], check=True, timeout=60, env=env,
                       stderr=subprocess.DEVNULL)


def proxy_binary() -> Path:
    return Path(os.environ.get("AURORA_PROXY_BIN", REPO_ROOT / "target" / "release" / "aurora-proxy"))


class ProxyProcess:
    """A running aurora-proxy with its own ports, relaying to one upstream."""

    START_TIMEOUT_S = 15.0
    STOP_TIMEOUT_S = 5.0

    def __init__(self, upstream_native: str, upstream_http: str, logdir: Path, extra_args: tuple = ()):
        self.native_port = free_port()
        self.http_port = free_port()
        self.metrics_port = free_port()
        self.upstream_native = upstream_native
        self.upstream_http = upstream_http
        self.extra_args = list(extra_args)
        self.log_path = logdir / f"aurora-proxy-{self.native_port}.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(HOST, self.native_port, self.http_port, self.metrics_port, is_proxy=True)

    def argv(self) -> list:
        return [
            str(proxy_binary()),
            "--native-listen", f"{HOST}:{self.native_port}",
            "--http-listen", f"{HOST}:{self.http_port}",
            "--metrics-listen", f"{HOST}:{self.metrics_port}",
            "--upstream-native", self.upstream_native,
            "--upstream-http", self.upstream_http,
            *self.extra_args,
        ]

    def start(self) -> None:
        binary = proxy_binary()
        if not binary.exists():
            raise RuntimeError(
                f"aurora-proxy binary not found at {binary}: run `cargo build --release -p aurora-proxy`, "
                "set AURORA_PROXY_BIN, or set AURORA_TEST_DIRECT=1 to test against ClickHouse directly"
            )
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while not port_accepts(self.native_port):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"aurora-proxy exited with {self.proc.returncode} during startup:\n{tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(
                    f"aurora-proxy did not accept on {HOST}:{self.native_port} within "
                    f"{self.START_TIMEOUT_S}s:\n{tail(self.log_path)}"
                )
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> Optional[str]:
        """SIGTERM, then wait; returns a problem description, or None if it exited in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return f"aurora-proxy had already exited with {self.proc.returncode}:\n{tail(self.log_path)}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"aurora-proxy ignored SIGTERM for {self.STOP_TIMEOUT_S}s:\n{tail(self.log_path)}"
        return None


def scripted_ask_proxy(clickhouse, llm, logdir: Path, *extra: str):
    """A generator for module fixtures: an aurora-proxy in front of `clickhouse` whose ASK goes to the scripted
    model `llm`; yields its endpoint and checks on stop that it exited cleanly."""
    p = ProxyProcess(
        f"127.0.0.1:{clickhouse.tcp_port}",
        f"http://127.0.0.1:{clickhouse.http_port}",
        logdir,
        ("--llm-base-url", llm.base_url, "--llm-model", "scripted", "--llm-timeout", "5s", *extra),
    )
    p.start()
    yield p.endpoint
    problem = p.stop()
    assert problem is None, problem
