"""ops/grafana/clockify-addons.json: every query reads a metric the services export, every metric has a panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from clockify_core.observability.metrics import Metrics
from tests.ops.support import ROOT

DASHBOARD = ROOT / "ops" / "grafana" / "clockify-addons.json"
# Labels Prometheus adds to every series (ops/prometheus.yml sets `service` per target).
TARGET_LABELS = frozenset({"instance", "job", "service"})
PROMQL_WORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                          "bool", "offset"})
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")


def exported() -> dict[str, frozenset[str]]:
    """Every sample name a service exports, with the labels its family carries."""
    names: dict[str, frozenset[str]] = {}
    metrics = [m for m in vars(Metrics("dashboard-test")).values() if isinstance(m, MetricWrapperBase)]
    for metric in metrics:
        for family in metric.describe():
            labels = frozenset(metric._labelnames)  # prometheus_client has no public accessor
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
            for suffix in suffixes[family.type]:
                names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def families() -> dict[str, tuple[str, ...]]:
    """Family name -> the sample names that show it."""
    out: dict[str, tuple[str, ...]] = {}
    for name in exported():
        family = re.sub(r"(_total|_bucket|_sum|_count)$", "", name)
        out[family] = (*out.get(family, ()), name)
    return out


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["query"]["query"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label_values() counts as reading one)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = _MATCHERS.sub("", text)
    text = re.sub(r"label_values\(([^,]*),\s*\w+\)", r"(\1)", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\[[^]]*\]", "", text)
    text = re.sub(r"\$\w+", "", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group()
        following = text[match.end():].lstrip()[:1]
        if following == "(" or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def used_labels(expr: str) -> set[str]:
    labels = {part.strip() for group in _GROUPING.findall(expr) for part in group.split(",") if part.strip()}
    for matchers in _MATCHERS.findall(expr):
        labels |= {m.group(1) for m in re.finditer(r'([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*"', matchers)}
    # label_values(metric, label)
    labels |= {m.group(1) for m in re.finditer(r"label_values\([^,]*,\s*(\w+)\)", expr)}
    return labels


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def test_every_query_reads_exported_metrics_with_their_labels(dashboard: dict[str, Any]) -> None:
    known = exported()
    checked = 0
    for where, expr in queries(dashboard):
        names = metric_names(expr)
        assert names, (where, expr)
        unknown = names - set(known)
        assert not unknown, f"{where}: {expr} reads {sorted(unknown)}, which no service exports"
        labels = set().union(*(known[n] for n in names)) | TARGET_LABELS
        assert used_labels(expr) <= labels, f"{where}: {expr} uses labels {sorted(used_labels(expr) - labels)}"
        checked += 1
    assert checked > 30


def test_every_exported_metric_has_a_panel(dashboard: dict[str, Any]) -> None:
    read = set().union(*(metric_names(expr) for where, expr in queries(dashboard) if not where.startswith("$")))
    missing = [family for family, samples in families().items() if not read & set(samples)]
    assert not missing, f"metrics without a panel: {missing}"


def test_the_checks_catch_mistakes() -> None:
    assert metric_names('sum by (route) (rate(http_requests_total{service=~"$service"}[$__rate_interval]))') == {
        "http_requests_total"
    }
    assert metric_names("histogram_quantile(0.95, sum by (le, api) (rate(clockify_request_duration_seconds_bucket[5m])))") == {
        "clockify_request_duration_seconds_bucket"
    }
    assert metric_names('label_values(addon_info{service=~"$service"}, instance)') == {"addon_info"}
    assert "http_request_total" not in exported()  # a typo is not a metric
    assert used_labels('sum by (rout) (rate(http_requests_total{status=~"5.."}[5m]))') == {"rout", "status"}
    assert "rout" not in exported()["http_requests_total"]


def test_the_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "clockify-addons"
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    # Panels never overlap: Grafana would shuffle them on import.
    cells = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & area, panel["title"]
        cells |= area
