"""Prometheus config and alert rules: promtool's own checks and the rules' unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.servers import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: scripts/setup.sh installs Debian's prometheus package, which ships it"
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=PROMETHEUS_DIR, timeout=60)


@pytest.mark.parametrize("args", [
    ("check", "config", "prometheus.yml"),
    ("check", "rules", "rules/aurora-alerts.yml"),
    ("test", "rules", "tests/aurora-alerts.test.yml"),
], ids=["config", "rules", "rule-unit-tests"])
def test_promtool(args):
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_or_is_listed():
    """The alerts the issue asks for exist; each of them is exercised by the promtool unit tests."""
    rules = (PROMETHEUS_DIR / "rules" / "aurora-alerts.yml").read_text()
    tests = (PROMETHEUS_DIR / "tests" / "aurora-alerts.test.yml").read_text()
    required = ["AuroraProxyHighErrorRate", "AuroraProxyP99Latency", "AuroraIngestLagGrowing",
                "AuroraIngestDeadLetters", "AuroraUpstreamDown", "AuroraProxyDown", "AuroraAskFailureRate"]
    for alert in required:
        assert f"alert: {alert}" in rules, alert
        assert f"alertname: {alert}" in tests, f"{alert} has no promtool unit test"
