"""A sample database of fixtures/<name> (analytics, shop): loading it, reading its question and semantic files,
and the test-side form of its reference queries (parameterized, bound back, scripted answers)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


class SampleDatabase:
    """fixtures/<name>: load.py (ensure_loaded, generate), questions.yaml, semantic.yaml."""

    def __init__(self, name: str):
        self.name = name
        self.dir = REPO_ROOT / "fixtures" / name
        self.questions_file = self.dir / "questions.yaml"
        self.semantic_file = self.dir / "semantic.yaml"

    def _loader(self):
        module_name = f"{self.name}_load"
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(module_name, self.dir / "load.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        return sys.modules[module_name]

    def ensure_loaded(self, host: str, native_port: int, force: bool = False) -> bool:
        """Create and fill the database unless it already holds the generated data; True if it (re)loaded."""
        return self._loader().ensure_loaded(host, native_port, force=force)

    def generated(self):
        """The generated dataset (one list of dicts per table)."""
        return self._loader().generate.generate()

    def questions(self) -> list:
        return yaml.safe_load(self.questions_file.read_text())["questions"]

    def semantic(self) -> dict:
        return yaml.safe_load(self.semantic_file.read_text())

    def scripted_answers(self) -> list:
        """Rules for the scripted LLM answering every question of questions.yaml with its parameterized reference."""
        rules = []
        for q in self.questions():
            sql, params = parameterized(q["sql"])
            answer = {"sql": sql, "params": params, "explanation": f"reference query {q['id']}"}
            rules.append({"match": q["question"], "responses": [{"content": answer}]})
        return rules


PLACEHOLDER = re.compile(r"\{(\w+):(\w+)\}")
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")
_MONTH = re.compile(r"(toYYYYMM\([\w.]+\)) = (\d{6})\b")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
# String literals that are part of the query, not values: a JSON key, a dateDiff unit.
_KEPT = re.compile(r"(visitParamExtract\w+\(\w+, '[^']*'\)|dateDiff\('\w+')")


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
    parts = _KEPT.split(sql)
    sql = "".join(part if _KEPT.fullmatch(part) else _STRING.sub(string, part) for part in parts)
    return sql, params


def literal(value, type_name: str) -> str:
    """A ClickHouse literal for a parameter value (test-side only: 18.16 has no query parameters)."""
    if re.match(r"U?Int\d+|Float\d+", type_name):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def bind(sql: str, params: dict) -> str:
    """`sql` with each `{name:Type}` placeholder replaced by the literal of params[name]."""
    return PLACEHOLDER.sub(lambda m: literal(params[m.group(1)], m.group(2)), sql)
