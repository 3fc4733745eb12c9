"""deploy/compose: `docker compose config` accepts the file (no engine needed), and what it renders is wired to
the files of this repository and to the ports of the contracts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.compose import compose
from support.servers import REPO_ROOT

COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"


def rendered(*extra: str) -> dict:
    result = compose("--env-file", ".env.example", *extra, "config", "--format", "json", cwd=COMPOSE_DIR)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_passes():
    result = compose("--env-file", ".env.example", "config", "--quiet", cwd=COMPOSE_DIR)
    assert result.returncode == 0, result.stderr
    with_llm = compose("--env-file", ".env.example", "--profile", "llm", "config", "--quiet", cwd=COMPOSE_DIR)
    assert with_llm.returncode == 0, with_llm.stderr


def test_secrets_are_required():
    """Without an .env, config refuses to render and names the missing secret."""
    result = compose("--env-file", "/dev/null", "config", "--quiet", cwd=COMPOSE_DIR)
    assert result.returncode != 0
    # Whichever required secret compose meets first (a password or aurora-ingest's API token).
    assert ("PASSWORD" in result.stderr or "API_TOKEN" in result.stderr) and "missing a value" in result.stderr, result.stderr


def test_services_and_profiles():
    base = rendered()["services"]
    assert {"clickhouse", "kafka", "kafka-topics", "aurora-proxy", "aurora-ingest", "prometheus", "grafana"} <= set(base)
    assert "llm" not in base
    assert "llm" in rendered("--profile", "llm")["services"]


def test_ports_follow_the_contracts():
    services = rendered()["services"]
    published = {(name, int(p["published"])) for name, s in services.items() for p in s.get("ports", [])}
    assert {("aurora-proxy", 9001), ("aurora-proxy", 8124), ("aurora-proxy", 9464), ("aurora-ingest", 8125),
            ("grafana", 3000), ("prometheus", 9090)} <= published
    assert all(p.get("host_ip") == "127.0.0.1" for s in services.values() for p in s.get("ports", [])), \
        "ports must bind to localhost unless AURORA_BIND says otherwise"
    proxy_env = services["aurora-proxy"]["environment"]
    assert proxy_env["AURORA_UPSTREAM_NATIVE"] == "clickhouse:9000"
    assert proxy_env["AURORA_INGEST_API_URL"] == "http://aurora-ingest:8125"
    assert "clickhouse" not in {n for n, _ in published} and "kafka" not in {n for n, _ in published}


def test_mounted_files_exist_and_prometheus_targets_are_services():
    services = rendered()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind" and not volume["source"].endswith(("/models", "/backups")):
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']}"
    grafana = {v["target"]: v["source"] for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    assert grafana["/etc/grafana/provisioning"].endswith("grafana/provisioning")
    assert grafana["/var/lib/grafana/dashboards/aurora"].endswith("grafana/dashboards")
    prometheus_yml = (REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text()
    for target in re.findall(r'"([a-z-]+):(\d+)"', prometheus_yml):
        host, port = target
        if host != "localhost":
            assert host in services, f"prometheus scrapes {host}, which is not a service"


def test_dockerfile_stages():
    """Multi-stage: a Rust build stage and a slim runtime stage that copies only the binaries."""
    text = (COMPOSE_DIR / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M)
    assert stages == ["build", "runtime"], stages
    copies = re.findall(r"^COPY\s+--from=(\S+)", text, re.M)
    assert copies and set(copies) <= set(stages)
    runtime = text.split("AS runtime", 1)[1]
    assert "-slim" in text.split("AS runtime", 1)[0].splitlines()[-1]
    assert "USER aurora" in runtime and "cargo" not in runtime
    build = rendered()["services"]["aurora-proxy"]["build"]
    assert (Path(build["context"]) / build["dockerfile"]).resolve() == (COMPOSE_DIR / "Dockerfile").resolve(), build
