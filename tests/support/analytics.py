"""The analytics sample dataset of fixtures/analytics: loading it, and reading its question and semantic files."""

from __future__ import annotations

import importlib.util
import re
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


_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")
_MONTH = re.compile(r"(toYYYYMM\([\w.]+\)) = (\d{6})\b")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def parameterized(sql: str) -> tuple:
    """The reference SQL as the model is asked to write it: each string literal and `toYYYYMM(..) = N` month
    becomes a `{pN:Type}` placeholder (Date, DateTime, String, UInt32) with its value in params.
    Test-side helper for scripted answers; binding the params back must give the reference result."""
    params: dict = {}

    def month(m: re.Match) -> str:
        name = f"p{len(params) + 1}"
        params[name] = int(m.group(2))
        return f"{m.group(1)} = {{{name}:UInt32}}"

    def string(m: re.Match) -> str:
        name = f"p{len(params) + 1}"
        value = re.sub(r"\\(.)", r"\1", m.group(1))
        params[name] = value
        kind = "Date" if _DATE.match(value) else "DateTime" if _DATETIME.match(value) else "String"
        return f"{{{name}:{kind}}}"

    sql = _MONTH.sub(month, sql)
    # visitParamExtractString(payload, 'path'): the JSON key is part of the query, not a value.
    parts = re.split(r"(visitParamExtract\w+\(\w+, '[^']*'\))", sql)
    sql = "".join(part if part.startswith("visitParamExtract") else _STRING.sub(string, part) for part in parts)
    return sql, params


def scripted_answers() -> list:
    """Rules for the scripted LLM answering every question of questions.yaml with its parameterized reference."""
    rules = []
    for q in questions():
        sql, params = parameterized(q["sql"])
        answer = {"sql": sql, "params": params, "explanation": f"reference query {q['id']}"}
        rules.append({"match": q["question"], "responses": [{"content": answer}]})
    return rules
