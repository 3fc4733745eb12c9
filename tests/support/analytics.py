"""The analytics sample dataset of fixtures/analytics: loading it, and reading its question and semantic files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ANALYTICS_DIR = REPO_ROOT / "fixtures" / "analytics"
QUESTIONS_FILE = ANALYTICS_DIR / "questions.yaml"
SEMANTIC_FILE = ANALYTICS_DIR / "semantic.yaml"


def _loader_module():
    if "analytics_load" not in sys.modules:
        spec = importlib.util.spec_from_file_location("analytics_load", ANALYTICS_DIR / "load.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["analytics_load"] = module
        spec.loader.exec_module(module)
    return sys.modules["analytics_load"]


def ensure_loaded(host: str, native_port: int, force: bool = False) -> bool:
    """Create and fill database `analytics` unless it already holds the generated data; True if it (re)loaded."""
    return _loader_module().ensure_loaded(host, native_port, force=force)


def generated():
    """The generated dataset (tenants, users, events, purchases as lists of dicts)."""
    return _loader_module().generate.generate()


def questions() -> list:
    return yaml.safe_load(QUESTIONS_FILE.read_text())["questions"]


def semantic() -> dict:
    return yaml.safe_load(SEMANTIC_FILE.read_text())
