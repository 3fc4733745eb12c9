"""Processes of the ingest tests: a Kafka broker (Apache Kafka by default, tansu with AURORA_KAFKA=tansu; both via
scripts/kafka.sh) and aurora-ingest daemons.

The daemon is started from its binary with a generated TOML config; tests drive it through its HTTP API
(the same one `aurora-ingest connect|disconnect|status` uses) and its command line. Each daemon gets a random API
token in a file of its own (`api_token_file`), sent as `Authorization: Bearer …` by `request()` and by the
command line (`cli()` passes `--config`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from .servers import HOST, REPO_ROOT, free_port, port_accepts, tail

KAFKA_SH = REPO_ROOT / "scripts" / "kafka.sh"


def ingest_binary() -> Path:
    return Path(os.environ.get("AURORA_INGEST_BIN", REPO_ROOT / "target" / "debug" / "aurora-ingest"))


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Polls `predicate` until it returns something truthy; fails with `what` and the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def broker_kind() -> str:
    """Which broker the ingest tests run on: env AURORA_KAFKA=apache (default) or tansu."""
    kind = os.environ.get("AURORA_KAFKA", "apache")
    if kind not in ("apache", "tansu"):
        raise ValueError(f"AURORA_KAFKA={kind!r}: expected apache or tansu")
    return kind


def make_broker(workdir: Path, sasl_ssl: bool = False):
    """The session's broker of the kind `broker_kind()` names (sasl_ssl: Apache Kafka with its SASL_SSL listener)."""
    if sasl_ssl or broker_kind() == "apache":
        return ApacheBroker(workdir, sasl_ssl=sasl_ssl)
    return Broker(workdir)


class Broker:
    """tansu on a free port, in memory, for the whole session."""

    kind = "tansu"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()

    @property
    def brokers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        subprocess.run([str(KAFKA_SH), "start", str(self.workdir), str(self.port)], check=True, timeout=120)

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SH), "stop", str(self.workdir)], check=True, timeout=30)

    def create_topic(self, name: str, partitions: int = 3) -> None:
        subprocess.run([str(KAFKA_SH), "topic", str(self.port), name, str(partitions)], check=True, timeout=30)


class ApacheBroker:
    """Apache Kafka (scripts/kafka.sh apache-start): one KRaft broker+controller on free ports, its storage formatted
    anew; with `sasl_ssl` a second listener, SASL_SSL with SCRAM-SHA-512 and PLAIN (user USER, certificates made for
    this run, CA at `ca`)."""

    kind = "apache"
    USER = "aurora"
    PASSWORD = "s3cret-Scram-pw"

    def __init__(self, workdir: Path, sasl_ssl: bool = False):
        self.workdir = workdir
        self.port = free_port()
        self.sasl_port = free_port() if sasl_ssl else None
        self.ca = workdir / "tls" / "ca.crt"

    @property
    def brokers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def sasl_brokers(self) -> str:
        assert self.sasl_port is not None, "started without --sasl-ssl"
        return f"{HOST}:{self.sasl_port}"

    def start(self) -> None:
        extra = ["--sasl-ssl", str(self.sasl_port)] if self.sasl_port else []
        env = dict(os.environ, AURORA_KAFKA_SASL_PASSWORD=self.PASSWORD)
        subprocess.run([str(KAFKA_SH), "apache-start", str(self.workdir), str(self.port), *extra],
                       check=True, timeout=180, env=env)

    def stop(self) -> None:
        self._admin = None
        subprocess.run([str(KAFKA_SH), "apache-stop", str(self.workdir)], check=True, timeout=60)

    def pid(self) -> int:
        return int((self.workdir / "kafka.pid").read_text())

    def restart(self) -> None:
        """Stops the JVM (SIGTERM, controlled shutdown) and starts it again on the same ports and data."""
        self.stop()
        env = dict(os.environ, AURORA_KAFKA_SASL_PASSWORD=self.PASSWORD)
        subprocess.run([str(KAFKA_SH), "apache-resume", str(self.workdir), str(self.port)],
                       check=True, timeout=180, env=env)

    def admin(self):
        """One AdminClient kept for the broker's life (its futures fail once the client is collected)."""
        from confluent_kafka.admin import AdminClient

        if getattr(self, "_admin", None) is None:
            self._admin = AdminClient({"bootstrap.servers": self.brokers})
        return self._admin

    def create_topic(self, name: str, partitions: int = 3, config: Optional[dict] = None) -> None:
        from confluent_kafka.admin import NewTopic

        futures = self.admin().create_topics([NewTopic(name, partitions, 1, config=config or {})],
                                             operation_timeout=30, request_timeout=30)
        for f in futures.values():
            f.result(60)
        # The new partitions have leaders once the metadata says so.
        wait_until(lambda: self._leaders(name) == partitions, 30, f"leaders of {name}'s {partitions} partitions")

    def _leaders(self, name: str) -> int:
        md = self.admin().list_topics(name, timeout=10)
        t = md.topics.get(name)
        if t is None or t.error is not None:
            return 0
        return sum(1 for p in t.partitions.values() if p.leader >= 0)

    def high_watermarks(self, topic: str, partitions: int = 3) -> dict:
        """The broker's high watermark of each partition (a fresh consumer's watermark query)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.brokers, "group.id": f"hw-{secrets.token_hex(4)}",
                      "enable.auto.commit": False})
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        finally:
            c.close()

    def client_config(self, password: Optional[str] = None, mechanism: str = "SCRAM-SHA-512") -> dict:
        """librdkafka properties of a client of the SASL_SSL listener (`bootstrap.servers` included)."""
        return {
            "bootstrap.servers": self.sasl_brokers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": self.USER,
            "sasl.password": password or self.PASSWORD,
            "ssl.ca.location": str(self.ca),
        }


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v))


AUTO = "auto"


class IngestDaemon:
    """One `aurora-ingest run` with its own API port, config file and API token (`token=None`: no token configured,
    so the daemon closes /pipelines)."""

    START_TIMEOUT_S = 15.0
    STOP_TIMEOUT_S = 60.0

    def __init__(self, workdir: Path, clickhouse_http: str, kafka: dict, pipelines: list, env: Optional[dict] = None,
                 token: Optional[str] = AUTO, extra_config: Optional[list] = None,
                 clickhouse_config: Optional[list] = None):
        self.workdir = workdir
        self.api_port = free_port()
        self.token = secrets.token_hex(24) if token == AUTO else token
        self.token_path = workdir / f"ingest-{self.api_port}.token"
        self.extra_config = list(extra_config or [])
        # More `[clickhouse]` lines (e.g. `cluster = "aurora"`); a list as `clickhouse_http` becomes `urls`.
        self.clickhouse_config = list(clickhouse_config or [])
        self.clickhouse_http = clickhouse_http
        self.kafka = kafka
        self.pipelines = pipelines
        self.env = env or {}
        self.config_path = workdir / f"ingest-{self.api_port}.toml"
        self.log_path = workdir / f"ingest-{self.api_port}.log"
        self.proc: Optional[subprocess.Popen] = None
        self.write_config()

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def write_config(self) -> None:
        lines = [f'api_listen = "{HOST}:{self.api_port}"']
        if self.token is not None:
            self.token_path.write_text(self.token + "\n")
            self.token_path.chmod(0o600)
            lines.append(f"api_token_file = {toml_value(str(self.token_path))}")
        lines += self.extra_config
        lines += [
            "[clickhouse]",
            (f"urls = {toml_value(self.clickhouse_http)}" if isinstance(self.clickhouse_http, (list, tuple))
             else f"url = {toml_value(self.clickhouse_http)}"),
            'retry_initial = "100ms"',
            'retry_max = "1s"',
            *self.clickhouse_config,
            "[kafka]",
        ]
        options = dict(self.kafka.get("options", {}))
        for k, v in self.kafka.items():
            if k != "options":
                lines.append(f"{k} = {toml_value(v)}")
        options.setdefault("session.timeout.ms", "6000")
        lines.append("[kafka.options]")
        lines += [f"{json.dumps(k)} = {json.dumps(str(v))}" for k, v in options.items()]
        for p in self.pipelines:
            lines.append("[[pipelines]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in p.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> "IngestDaemon":
        binary = ingest_binary()
        if not binary.exists():
            raise RuntimeError(f"aurora-ingest not found at {binary}: run `cargo build -p aurora-ingest` or set AURORA_INGEST_BIN")
        log = open(self.log_path, "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), **self.env)
        self.proc = subprocess.Popen(
            [str(binary), "--config", str(self.config_path), "run"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        log.close()
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while not port_accepts(self.api_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"aurora-ingest exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"aurora-ingest API did not come up:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> Optional[str]:
        """SIGTERM (the daemon disconnects its pipelines), then wait; returns a problem or None."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"aurora-ingest ignored SIGTERM for {self.STOP_TIMEOUT_S}s:\n{self.log()}"
        return None

    # --- API -------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, timeout: float = 90.0, token: Optional[str] = AUTO,
                headers: Optional[dict] = None):
        """One API call: (status, JSON body). Sends this daemon's token unless `token` says otherwise (None: none)."""
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"content-type": "application/json"}
        token = self.token if token == AUTO else token
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        req = urllib.request.Request(self.api + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def pipelines_view(self) -> dict:
        status, body = self.request("GET", "/pipelines")
        assert status == 200, body
        return {p["name"]: p for p in body["pipelines"]}

    def pipeline(self, name: str) -> dict:
        return self.pipelines_view()[name]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.api + "/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric_name = head.split("{", 1)[0]
            if metric_name != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def cli(self, *args: str, timeout: float = 90.0, config: bool = True) -> subprocess.CompletedProcess:
        """`aurora-ingest <args> --api <this daemon>`, with `--config` of this daemon (its token) unless `config=False`."""
        extra = ["--config", str(self.config_path)] if config else []
        env = {k: v for k, v in os.environ.items() if k != "AURORA_INGEST_CONFIG"}
        env.update(self.env)
        return subprocess.run([str(ingest_binary()), *args, *extra, "--api", self.api],
                              capture_output=True, text=True, timeout=timeout, env=env)


def nisshi_binary() -> Optional[Path]:
    """The nisshi broker (TLS + SASL SCRAM), unpacked by scripts/kafka.sh from ../shared/testbin, or None."""
    r = subprocess.run([str(KAFKA_SH), "nisshi-bin"], capture_output=True, text=True, timeout=120)
    path = r.stdout.strip()
    return Path(path) if r.returncode == 0 and path and Path(path).exists() else None


class SecureBroker:
    """nisshi with TLS and SCRAM-SHA-512 authentication; users are created before authentication is switched on
    (nisshi keeps them in its sqlite storage)."""

    USER = "aurora"
    PASSWORD = "s3cret-Scram-pw"

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.ca = workdir / "ca.crt"

    @property
    def brokers(self) -> str:
        return f"{HOST}:{self.port}"

    def _certificates(self) -> None:
        d = self.workdir
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60, cwd=d)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=aurora-test-ca")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")

    def _broker(self, *extra: str) -> None:
        log = open(self.workdir / "nisshi.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "broker", "--silent",
             "--listener-url", f"tcp://{HOST}:{self.port}",
             "--advertised-listener-url", f"tcp://{HOST}:{self.port}",
             "--storage-engine", "sqlite://nisshi.db", "--group-initial-rebalance-delay", "100ms", *extra],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 20
        while not port_accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nisshi did not start:\n{tail(self.workdir / 'nisshi.log')}")
            time.sleep(0.05)

    def _stop_broker(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start(self, topics) -> None:
        self._certificates()
        self._broker()
        url = f"tcp://{HOST}:{self.port}"
        subprocess.run([str(self.binary), "user", "create", "--broker", url, self.USER, self.PASSWORD,
                        "--mechanism", "scram512"], check=True, capture_output=True, timeout=60, cwd=self.workdir)
        for t in topics:
            subprocess.run([str(self.binary), "topic", "create", "--broker", url, "--partitions", "3", t],
                           check=True, capture_output=True, timeout=60, cwd=self.workdir)
        self._stop_broker()
        self._broker("--authentication", "--cert", "server.crt", "--key", "server.key")

    def stop(self) -> None:
        self._stop_broker()

    def client_config(self, password: Optional[str] = None) -> dict:
        """librdkafka properties of a client of this broker."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": self.USER,
            "sasl.password": password or self.PASSWORD,
            "ssl.ca.location": str(self.ca),
        }
