"""Reading Grafana dashboards and expanding their queries the way Grafana and the ClickHouse plugin do.

No Grafana server runs here, so the tests replay what it would send: Grafana's frontend interpolates template
variables (`${tenant:singlequote}`), then the plugin's backend (grafana-clickhouse-datasource v4,
`pkg/macros`) expands its `$__` macros for the panel's time range and interval, and the SQL goes to the
datasource — aurora-proxy, natively or over HTTP.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Callable, Iterator

from .servers import REPO_ROOT

DASHBOARDS = REPO_ROOT / "grafana" / "dashboards"
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "rules"
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"

#: A metric name as Aurora's binaries write it (histograms add _bucket, _sum, _count).
AURORA_METRIC = re.compile(r"\baurora_[a-z0-9_]+\b")


@dataclasses.dataclass(frozen=True)
class Query:
    """One query of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    datasource_type: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboard_files() -> list:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def _panels(panels: list) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _datasource_type(datasource, dashboard: dict) -> str:
    """The plugin type behind a panel's or target's datasource reference (a `${var}` resolves to its variable)."""
    if not isinstance(datasource, dict):
        return ""
    if datasource.get("type"):
        return datasource["type"]
    uid = datasource.get("uid", "")
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "datasource" and uid in (f"${var['name']}", f"${{{var['name']}}}"):
            return var["query"]
    return ""


def queries(path: Path) -> list:
    """Every target of every panel, and the query of every query variable."""
    board = load(path)
    found = []
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            ds_type = _datasource_type(target.get("datasource") or panel.get("datasource"), board)
            text = target.get("rawSql") if ds_type == CLICKHOUSE_PLUGIN else target.get("expr")
            if text:
                found.append(Query(board["title"], panel["title"], target.get("refId", "A"), ds_type, text))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        ds_type = _datasource_type(var.get("datasource"), board)
        q = var.get("query")
        text = q.get("query") or q.get("rawSql") if isinstance(q, dict) else q
        found.append(Query(board["title"], f"variable {var['name']}", var["name"], ds_type, text))
    return found


def variables(path: Path) -> list:
    return [v for v in load(path).get("templating", {}).get("list", []) if v.get("type") == "query"]


# --- Grafana's variable interpolation (frontend) -----------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")


def interpolate(text: str, values: dict) -> str:
    """Replace template variables by their (multi-)values with Grafana's formats (singlequote, csv, regex, raw).

    Names Grafana itself provides (`$__…`) are left for the datasource: the plugin expands its own macros.
    """

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        fmt = m.group(2)
        if name.startswith("__"):
            return m.group(0)
        if name not in values:
            raise KeyError(f"variable {name!r} has no value (in {text!r})")
        vals = values[name]
        vals = vals if isinstance(vals, list) else [vals]
        if fmt == "singlequote":
            return ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in vals)
        if fmt == "csv" or fmt is None and len(vals) > 1:
            return ",".join(vals)
        if fmt in (None, "raw"):
            return vals[0]
        if fmt == "regex":
            return "(" + "|".join(re.escape(v) for v in vals) + ")"
        raise ValueError(f"variable format {fmt!r} is not replayed by these tests")

    return _VARIABLE.sub(one, text)


# --- The ClickHouse plugin's macros (backend) --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TimeRange:
    start: dt.datetime
    end: dt.datetime
    interval_s: int

    @property
    def from_s(self) -> int:
        return int(self.start.timestamp())

    @property
    def to_s(self) -> int:
        return int(self.end.timestamp())


def _date_time(seconds: int) -> str:
    return f"toDateTime({seconds})"


def _date(t: dt.datetime) -> str:
    return f"toDate('{t:%Y-%m-%d}')"


def _one(args: list, name: str) -> str:
    if len(args) != 1:
        raise ValueError(f"$__{name} expects 1 argument, got {len(args)}")
    return args[0]


_MACROS: dict = {
    "timeFilter": lambda r, a: (
        f"{_one(a, 'timeFilter')} >= {_date_time(r.from_s)} AND {a[0]} <= {_date_time(r.to_s)}"
    ),
    "timeFilter_ms": lambda r, a: (
        f"{_one(a, 'timeFilter_ms')} >= fromUnixTimestamp64Milli({r.from_s * 1000}) "
        f"AND {a[0]} <= fromUnixTimestamp64Milli({r.to_s * 1000})"
    ),
    "dateFilter": lambda r, a: (
        f"{_one(a, 'dateFilter')} >= {_date(r.start)} AND {a[0]} <= {_date(r.end)}"
    ),
    "fromTime": lambda r, a: _date_time(r.from_s),
    "toTime": lambda r, a: _date_time(r.to_s),
    "interval_s": lambda r, a: str(max(r.interval_s, 1)),
    "timeInterval": lambda r, a: (
        f"toStartOfInterval(toDateTime({_one(a, 'timeInterval')}), INTERVAL {max(r.interval_s, 1)} second)"
    ),
}

#: `$__name` or `$__name(args)`; arguments are split on commas (the dashboards pass plain column names).
_MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")


def expand_macros(sql: str, time_range: TimeRange) -> str:
    def one(m: re.Match) -> str:
        name, args = m.group(1), m.group(2)
        if name not in _MACROS:
            raise ValueError(f"macro $__{name} is not one the ClickHouse plugin expands")
        expand: Callable = _MACROS[name]
        return expand(time_range, [a.strip() for a in args.split(",")] if args else [])

    return _MACRO.sub(one, sql)


# --- Metric names -------------------------------------------------------------------------------------------

def promql_of_dashboards() -> list:
    return [q for path in dashboard_files() for q in queries(path) if q.datasource_type == "prometheus"]


def alert_rules() -> list:
    """(file name, alert name, expr) of every alerting and recording rule."""
    import yaml

    found = []
    for path in sorted(ALERT_RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((path.name, rule.get("alert") or rule.get("record"), rule["expr"]))
    return found


def referenced_metric_names() -> dict:
    """Metric name → where it is used (dashboards and alert rules)."""
    names: dict = {}
    for q in promql_of_dashboards():
        for name in AURORA_METRIC.findall(q.text):
            names.setdefault(name, []).append(q.where)
    for file_name, alert, expr in alert_rules():
        for name in AURORA_METRIC.findall(expr):
            names.setdefault(name, []).append(f"{file_name} / {alert}")
    return names
