"""Alerts and dashboards on a real Prometheus (built by hack/build-tools.sh, pinned and cached).

- `promtool check rules` and `promtool test rules` (tests/e2e/alert-tests.yaml: a case that fires
  every alert) on the rules of manifests/components/alerts;
- a Prometheus scrapes a live operator every second while sessions go through their lifecycle
  (run, stop, restart, complete, fail), then every query of every dashboard panel must return
  data, and so must the platform dashboard's queries the operator answers.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.kube import Kube
from controller.resources import SESSIONS
from tests.e2e.conftest import (
    OperatorFactory,
    annotate,
    condition_of,
    create_session,
    phase_is,
    wait_session,
)
from tests.e2e.helpers import COMPLETE_AFTER, EXIT_CODE, FAIL_AFTER, wait_for
from tests.e2e.operator import OperatorProcess, free_port
from tests.e2e.runner_double import RunnerDouble
from tests.e2e.tools import run, tool

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "manifests" / "components" / "alerts" / "prometheusrule.yaml"
ALERT_TESTS = Path(__file__).with_name("alert-tests.yaml")
DASHBOARD = REPO / "manifests" / "components" / "grafana-dashboard" / "agentic-operator.json"
# The target labels the ServiceMonitor's scrape adds, so the dashboard's filters apply as in a cluster.
TARGET_LABELS = {"namespace": "ambient-code", "pod": "agentic-operator-e2e"}
JOB = "agentic-operator-metrics"
# Queries of the platform's dashboard (uid ambient-operator) for the names the operator exports.
PLATFORM_QUERIES = [
    "ambient_sessions_active",
    "ambient_sessions_pending",
    "rate(ambient_sessions_by_project[5m])",
    "histogram_quantile(0.95, sum by (namespace, le) (rate(ambient_session_startup_duration_bucket[5m])))",
    "histogram_quantile(0.95, sum by (namespace, le) (rate(ambient_session_total_duration_bucket[5m])))",
    "sum by (namespace, to_phase) (increase(ambient_session_phase_transitions[5m]))",
    "rate(ambient_reconcile_retries[5m])",
    "rate(ambient_session_timeouts[5m])",
    "rate(ambient_token_refresh_errors[5m])",
    "sum by (namespace, final_phase) (increase(ambient_sessions_completed[5m]))",
]


def rules_file(directory: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file."""
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(RULES.read_text())["spec"]))
    return path


def test_alert_rules_pass_promtool_and_every_alert_has_a_firing_case(tmp_path: Path) -> None:
    rules = rules_file(tmp_path)
    run(tool("promtool"), "check", "rules", str(rules))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    run(tool("promtool"), "test", "rules", str(tmp_path / ALERT_TESTS.name))
    alerts = {
        r["alert"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    fired = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts and alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}"


def panel_queries() -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield from walk(panel.get("panels", []))
            if panel.get("type") != "row":
                yield panel

    for panel in walk(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def grafana_to_promql(expr: str) -> str:
    """The dashboard's variables as Grafana would fill them: All for the filters, a wide window."""
    expr = expr.replace("$__rate_interval", "5m")
    return re.sub(r'=~"\$\w+"', '=~".+"', expr)


class Prometheus:
    def __init__(self, directory: Path, target_port: int):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"], "labels": TARGET_LABELS}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as answer:
            return json.loads(answer.read()) if path.startswith("/api/") else answer.status

    def ready(self) -> bool:
        assert self.process.poll() is None, "prometheus exited; see prometheus.log"
        try:
            return bool(self._get("/-/ready") == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert answer["status"] == "success", answer
        assert answer["data"]["resultType"] == "vector", answer
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(operator: OperatorProcess) -> Prometheus:
        server = Prometheus(tmp_path, operator.metrics_port)
        started.append(server)
        wait_for(server.ready, 60, message="prometheus ready")
        return server

    yield start
    for server in started:
        server.stop()


def _lifecycle(kube: Kube, namespace: str) -> None:
    """Every kind of phase change the Sessions row shows: start, stop, restart, completion, failure."""
    create_session(kube, "done", namespace, annotations={COMPLETE_AFTER: "2s"})
    create_session(kube, "fail", namespace, annotations={FAIL_AFTER: "2s", EXIT_CODE: "2"})
    create_session(kube, "run", namespace)
    wait_session(kube, namespace, "run", phase_is("Running"), timeout=60)
    annotate(kube, namespace, "run", {"ambient-code.io/desired-phase": "Stopped"})
    wait_session(kube, namespace, "run", phase_is("Stopped"), timeout=60)
    annotate(kube, namespace, "run", {"ambient-code.io/desired-phase": "Running"})
    wait_session(kube, namespace, "run", phase_is("Running"), timeout=60)
    # A repo added to the running session: runner sync calls the runner (the Runner sync row).
    kube.patch(SESSIONS, namespace, "run", {"spec": {"repos": [{"url": "https://github.com/example/alpha"}]}})
    wait_session(
        kube,
        namespace,
        "run",
        lambda s: condition_of(s, "ReposReconciled").get("status") == "True",
        timeout=60,
        what="ReposReconciled=True",
    )
    wait_session(kube, namespace, "done", phase_is("Completed"), timeout=60)
    wait_session(kube, namespace, "fail", phase_is("Failed"), timeout=60)


def test_every_dashboard_panel_returns_data_from_a_live_operator(
    kube: Kube,
    namespace: str,
    start_operator: OperatorFactory,
    prometheus: Any,
    request: pytest.FixtureRequest,
) -> None:
    runner = RunnerDouble(kube).start()
    request.addfinalizer(runner.stop)
    operator = start_operator(
        [namespace],
        args=[
            "--leader-elect",
            "--leader-election-namespace",
            namespace,
            "--runner-url-template",
            runner.url_template,
        ],
    )
    server = prometheus(operator)
    wait_for(lambda: bool(server.query(f'up{{job="{JOB}"}} == 1')), 30, message="operator scraped")
    time.sleep(2)  # series created before any transition are scraped as zeros first
    _lifecycle(kube, namespace)

    # Until Prometheus has scraped everything the operator counted.
    transitions = "agentic_operator_session_phase_transitions_total"
    counted = sum(v for _, v in operator.metrics()[transitions])
    wait_for(
        lambda: sum(float(s["value"][1]) for s in server.query(transitions)) == counted,
        30,
        message="the last transitions scraped",
    )
    time.sleep(2)

    queries = list(panel_queries())
    assert len(queries) >= 40, "the dashboard lost its panels"
    empty, no_number = [], []
    for title, expr in queries:
        result = server.query(grafana_to_promql(expr))
        if not result:
            empty.append(f"{title}: {expr}")
        elif not any(math.isfinite(float(s["value"][1])) for s in result):
            no_number.append(f"{title}: {expr} -> {result}")
    for expr in PLATFORM_QUERIES:
        if not server.query(expr):
            empty.append(f"platform dashboard: {expr}")
    assert empty == [], "queries without data:\n" + "\n".join(empty)
    assert no_number == [], "queries with only NaN:\n" + "\n".join(no_number)

    # The Sessions row says what happened.
    def series(promql: str) -> dict[str, float]:
        return {json.dumps(s["metric"], sort_keys=True): float(s["value"][1]) for s in server.query(promql)}

    assert list(series('sum by (reason) (agentic_operator_session_stops_total{reason="user"})').values()) == [
        1
    ]
    assert list(series("sum(agentic_operator_session_restarts_total)").values()) == [1]
    assert list(series("sum(agentic_operator_session_failures_total)").values()) == [1]
    assert series('sum by (phase) (agentic_operator_sessions{phase="Running"})') == {
        '{"phase": "Running"}': 1
    }
    assert list(series('sum(ambient_sessions_completed{final_phase="Completed"})').values()) == [1]
