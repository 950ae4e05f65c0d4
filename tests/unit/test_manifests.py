"""Static checks of the deploy side: CRD, kustomizations, RBAC, Deployment, alerts and dashboard.

No cluster is needed. `kubectl kustomize` (client side only) renders the kustomizations; without
kubectl those tests fail, unless ALLOW_NO_KUBECTL=1 is set.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import controller.session_metrics  # noqa: F401  (registers the session metrics)
from controller import config, metrics
from controller.platform import runner_metrics
from tests.unit.pod_security import fixed_ids, restricted_violations

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
RBAC = ROOT / "rbac"
CRD_PATH = MANIFESTS / "crd" / "agenticsessions.vteam.ambient-code.yaml"
DEPLOYMENT_PATH = MANIFESTS / "base" / "deployment.yaml"
NAMESPACED = MANIFESTS / "overlays" / "namespaced"
NAMESPACED_PATCH_PATH = NAMESPACED / "deployment-patch.yaml"
COMPONENTS = MANIFESTS / "components"
DASHBOARD_PATH = COMPONENTS / "grafana-dashboard" / "agentic-operator.json"
ALERTS_PATH = COMPONENTS / "alerts" / "prometheusrule.yaml"

PHASES = ["Pending", "Creating", "Running", "Stopping", "Stopped", "Completed", "Failed"]
STOPPED_REASONS = ["user", "inactivity", "run-finished", "timeout"]

# Every default in the schema, by path: the original CRD's defaults plus interactive. A new
# default changes what existing clients get, so it has to be added here on purpose.
ALLOWED_DEFAULTS: dict[str, Any] = {
    "spec.interactive": True,
    "spec.timeout": 300,
    "spec.repos[].branch": "main",
    "spec.repos[].autoPush": False,
    "spec.activeWorkflow.branch": "main",
    "spec.llmSettings.model": "claude-sonnet-4-6",
    "spec.llmSettings.temperature": 0.7,
    "spec.llmSettings.maxTokens": 4000,
    "status.phase": "Pending",
}

# The ClusterRole, rule by rule, as (apiGroup, resource, verb).
EXPECTED_CLUSTER_RULES: set[tuple[str, str, str]] = {
    *(
        ("vteam.ambient-code", "agenticsessions", v)
        for v in ("get", "list", "watch", "update", "patch", "create")
    ),
    *(("vteam.ambient-code", "agenticsessions/status", v) for v in ("get", "patch")),
    *(("", "namespaces", v) for v in ("get", "list", "watch")),
    *(("", "persistentvolumeclaims", v) for v in ("get", "list", "watch", "create")),
    *(("", "serviceaccounts", v) for v in ("get", "list", "watch", "create", "patch")),
    ("", "serviceaccounts/token", "create"),
    *(("", "secrets", v) for v in ("get", "list", "watch", "create", "update", "patch", "delete")),
    *(("", "pods", v) for v in ("get", "list", "watch", "create", "delete")),
    *(("", "services", v) for v in ("get", "list", "watch", "create", "delete")),
    *(("", "configmaps", v) for v in ("get", "list", "watch")),
    ("", "events", "create"),
    *(("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete")),
    *(
        ("rbac.authorization.k8s.io", r, v)
        for r in ("roles", "rolebindings")
        for v in ("get", "list", "watch", "create", "update", "patch", "delete")
    ),
    *(("vteam.ambient-code", "projectsettings", v) for v in ("get", "list", "watch", "create")),
    *(("vteam.ambient-code", "projectsettings/status", v) for v in ("get", "update", "patch")),
    *(("", "limitranges", v) for v in ("get", "list", "watch", "create", "patch")),
    *(
        ("networking.k8s.io", "networkpolicies", v)
        for v in ("get", "list", "watch", "create", "update", "patch", "delete")
    ),
    ("rbac.authorization.k8s.io", "clusterroles", "bind"),
}
# The one rule with names: binding the platform's project ClusterRoles for group access.
PROJECT_CLUSTER_ROLES = ["ambient-project-admin", "ambient-project-edit", "ambient-project-view"]
CLUSTER_SCOPED_RESOURCES = {"namespaces"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"{path}: expected one YAML mapping"
    return data


def crd_version() -> dict[str, Any]:
    versions = load_yaml(CRD_PATH)["spec"]["versions"]
    assert len(versions) == 1
    version: dict[str, Any] = versions[0]
    return version


def crd_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd_version()["schema"]["openAPIV3Schema"]
    return schema


def walk_schema(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema below `schema` with its path: properties, array items and map values."""
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, child
        yield from walk_schema(child, child_path)
    items = schema.get("items")
    if isinstance(items, dict):
        yield path + "[]", items
        yield from walk_schema(items, path + "[]")
    values = schema.get("additionalProperties")
    if isinstance(values, dict):
        yield path + "{}", values
        yield from walk_schema(values, path + "{}")


def schema_at(path: str) -> dict[str, Any]:
    found = dict(walk_schema(crd_schema()))
    assert path in found, f"no schema at {path}"
    return found[path]


def config_env_names() -> set[str]:
    return {str(f.metadata["env"]) for f in dataclasses.fields(config.OperatorConfig)}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return result


def rbac_triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def registry_metric_names() -> set[str]:
    """Series names the operator exports, from the families in controller.metrics.REGISTRY."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_PROMQL_MATCHERS = re.compile(r"\{[^}]*\}")
_PROMQL_RANGE = re.compile(r"\[[^\]]*\]")
_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_PROMQL_IDENT = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*")
_PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = _PROMQL_STRING.sub('""', expr)
    text = _PROMQL_MATCHERS.sub(" ", text)
    text = _PROMQL_RANGE.sub(" ", text)
    text = _PROMQL_GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _PROMQL_IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def promql_grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for match in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(label.strip() for label in match.group(1).split(",") if label.strip())
    return labels


def is_allowed_metric(name: str, exported: set[str]) -> bool:
    return name in exported or name == "up" or name.startswith("process_")


def dashboard() -> dict[str, Any]:
    with DASHBOARD_PATH.open(encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, dict)
    return data


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves excluded."""
    for panel in panels:
        if panel.get("type") == "row":
            yield from dashboard_panels(panel.get("panels", []))
        else:
            yield panel


def alert_rules() -> list[dict[str, Any]]:
    rule = load_yaml(ALERTS_PATH)
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("ALLOW_NO_KUBECTL") == "1":
            pytest.skip("kubectl not on PATH and ALLOW_NO_KUBECTL=1")
        pytest.fail(
            "kubectl is not on PATH: it is needed to render the kustomizations "
            "(`kubectl kustomize`, no cluster involved). Install kubectl, or set "
            "ALLOW_NO_KUBECTL=1 to skip these checks."
        )
    return path


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    return None


# ---------------------------------------------------------------------------------------------
# CRD
# ---------------------------------------------------------------------------------------------


def test_crd_identity() -> None:
    crd = load_yaml(CRD_PATH)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "agenticsessions.vteam.ambient-code"
    spec = crd["spec"]
    assert spec["group"] == "vteam.ambient-code"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == "AgenticSession"
    assert names["plural"] == "agenticsessions"
    assert names["singular"] == "agenticsession"
    assert names["shortNames"] == ["as"]
    version = crd_version()
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    # The API server rejects a CRD whose schema says anything about metadata beyond name and
    # generateName, a description included.
    assert "metadata" not in crd_schema()["properties"]


def test_crd_printer_columns() -> None:
    columns = {c["name"]: c for c in crd_version()["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Model", "Ready", "Age"]
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Model"]["jsonPath"] == ".status.reconciledModel.model"  # what the runner runs
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    assert columns["Age"]["type"] == "date"


def test_every_schema_property_has_a_description() -> None:
    schema = crd_schema()
    missing = [
        path
        for path, child in [("<root>", schema), *walk_schema(schema)]
        if not isinstance(child.get("description"), str) or not child["description"].strip()
    ]
    assert not missing, f"schema properties without a description: {missing}"
    # The walk reaches the deepest levels (array items inside arrays of objects).
    assert "status.reconciledRepos[].branches[]" in dict(walk_schema(schema))


def test_phase_and_stopped_reason_enums_match_the_design() -> None:
    assert schema_at("status.phase")["enum"] == PHASES
    assert schema_at("status.stoppedReason")["enum"] == STOPPED_REASONS


def test_only_compatible_defaults() -> None:
    defaults = {path: s["default"] for path, s in walk_schema(crd_schema()) if "default" in s}
    assert defaults == ALLOWED_DEFAULTS


def test_spec_accepts_what_the_platform_crd_accepts() -> None:
    """No caps or patterns the platform's CRD lacks: the operator rejects unusable values itself."""
    for path in ("spec.initialPrompt", "spec.displayName", "spec.repos[].url"):
        assert not {"maxLength", "pattern"} & set(schema_at(path)), path
    assert "maxItems" not in schema_at("spec.repos")
    for path in ("spec.timeout", "spec.llmSettings.temperature", "spec.llmSettings.maxTokens"):
        assert not {"minimum", "maximum"} & set(schema_at(path)), path
    assert schema_at("spec.inactivityTimeout")["minimum"] == 0
    assert "default" not in schema_at("spec.inactivityTimeout")
    assert schema_at("spec.repos[]")["required"] == ["url"]
    assert schema_at("spec.runnerType")["type"] == "string"
    assert schema_at("spec.environmentVariables{}")["type"] == "string"
    assert schema_at("spec.mcpServers.custom")["x-kubernetes-preserve-unknown-fields"] is True
    assert "x-kubernetes-preserve-unknown-fields" not in schema_at("spec")


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = schema_at("status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert sorted(conditions["items"]["required"]) == ["status", "type"]
    assert schema_at("status.conditions[].status")["enum"] == ["True", "False", "Unknown"]
    assert schema_at("status.conditions[].observedGeneration")["format"] == "int64"
    assert schema_at("status.observedGeneration")["format"] == "int64"
    for field in ("startTime", "completionTime", "lastActivityTime"):
        assert schema_at(f"status.{field}")["format"] == "date-time"


# ---------------------------------------------------------------------------------------------
# kustomizations
# ---------------------------------------------------------------------------------------------


def kustomization_paths() -> list[Path]:
    return sorted([*MANIFESTS.rglob("kustomization.yaml"), *RBAC.rglob("kustomization.yaml")])


def referenced_paths(kustomization: dict[str, Any]) -> Iterator[str]:
    yield from kustomization.get("resources", [])
    yield from kustomization.get("components", [])
    yield from kustomization.get("crds", [])
    yield from kustomization.get("patchesStrategicMerge", [])
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            yield patch["path"]
    for generator in (
        *kustomization.get("configMapGenerator", []),
        *kustomization.get("secretGenerator", []),
    ):
        for entry in (*generator.get("files", []), *generator.get("envs", [])):
            yield entry.split("=", 1)[-1]


@pytest.mark.parametrize("path", kustomization_paths(), ids=lambda p: str(p.relative_to(ROOT)))
def test_kustomization_lists_existing_files(path: Path) -> None:
    kustomization = load_yaml(path)
    assert kustomization["kind"] in ("Kustomization", "Component")
    for ref in referenced_paths(kustomization):
        assert "://" not in ref, f"{path}: remote reference {ref}"
        target = path.parent / ref
        assert target.exists(), f"{path}: {ref} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{path}: {ref} has no kustomization.yaml"


def test_kustomizations_found() -> None:
    relative = {str(p.relative_to(ROOT)) for p in kustomization_paths()}
    assert {
        "manifests/kustomization.yaml",
        "manifests/crd/kustomization.yaml",
        "manifests/overlays/namespaced/kustomization.yaml",
        "manifests/components/servicemonitor/kustomization.yaml",
        "manifests/components/alerts/kustomization.yaml",
        "manifests/components/grafana-dashboard/kustomization.yaml",
        "rbac/kustomization.yaml",
    } <= relative


# ---------------------------------------------------------------------------------------------
# RBAC
# ---------------------------------------------------------------------------------------------


def test_cluster_role_has_no_dangerous_grants() -> None:
    role = load_yaml(RBAC / "cluster_role.yaml")
    assert role["kind"] == "ClusterRole"
    assert role["metadata"]["name"] == "agentic-operator"
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        if rule["resources"] == ["clusterroles"]:
            assert rule["verbs"] == ["bind"] and rule["resourceNames"] == PROJECT_CLUSTER_ROLES, rule
            continue
        assert "resourceNames" not in rule
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"wildcard {key} in {rule}"
        assert not {"bind", "escalate", "impersonate"} & set(rule["verbs"]), rule
        assert not {"pods/exec", "pods/attach", "pods/portforward"} & set(rule["resources"]), rule
        assert not {"clusterroles", "clusterrolebindings"} & set(rule["resources"]), rule
        if "namespaces" in rule["resources"]:
            assert "delete" not in rule["verbs"], rule


def test_cluster_role_is_exactly_the_least_privilege_set() -> None:
    role = load_yaml(RBAC / "cluster_role.yaml")
    assert rbac_triples(role["rules"]) == EXPECTED_CLUSTER_RULES


def test_namespaced_role_matches_the_cluster_role() -> None:
    role = load_yaml(NAMESPACED / "role.yaml")
    assert role["kind"] == "Role"
    assert role["metadata"]["name"] == "agentic-operator"
    assert role["metadata"]["namespace"] == "ambient-sessions"
    expected = {t for t in EXPECTED_CLUSTER_RULES if t[1] not in CLUSTER_SCOPED_RESOURCES}
    assert rbac_triples(role["rules"]) == expected


def test_bindings_name_the_operator_service_account() -> None:
    account = {"kind": "ServiceAccount", "name": "agentic-operator", "namespace": "ambient-code"}
    for path in (
        RBAC / "cluster_role_binding.yaml",
        RBAC / "leader_election_role_binding.yaml",
        NAMESPACED / "role_binding.yaml",
    ):
        assert load_yaml(path)["subjects"] == [account], path


def test_leader_election_role() -> None:
    role = load_yaml(RBAC / "leader_election_role.yaml")
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == "ambient-code"
    triples = rbac_triples(role["rules"])
    # Only the Lease: every Event the operator records is about a session, in its namespace.
    assert triples == {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


# ---------------------------------------------------------------------------------------------
# Deployment
# ---------------------------------------------------------------------------------------------


def test_deployment_security_context() -> None:
    deployment = load_yaml(DEPLOYMENT_PATH)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "agentic-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in containers(deployment):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert not context.get("privileged", False)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]


def test_deployment_shape() -> None:
    deployment = load_yaml(DEPLOYMENT_PATH)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = containers(deployment)
    assert deployment["spec"]["replicas"] == 1
    assert container["args"] == ["run", "--leader-elect"]
    assert container["image"] == "quay.io/ambient_code/agentic-operator:v0.1.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    # The pod must outlive the operator's drain on SIGTERM.
    env = {e["name"]: e.get("value") for e in container["env"]}
    drain = float(env.get("SHUTDOWN_TIMEOUT") or config.OperatorConfig().shutdown_timeout)
    assert pod["terminationGracePeriodSeconds"] > drain


@pytest.mark.parametrize("path", [DEPLOYMENT_PATH, NAMESPACED_PATCH_PATH], ids=["base", "namespaced"])
def test_deployment_env_names_are_operator_settings(path: Path) -> None:
    known = config_env_names()
    names = [e["name"] for c in containers(load_yaml(path)) for e in c.get("env", [])]
    assert names, f"{path}: no env vars"
    assert len(names) == len(set(names)), f"{path}: duplicated env vars"
    unknown = sorted(set(names) - known)
    assert not unknown, f"{path}: env vars not declared in controller/config.py: {unknown}"


# ---------------------------------------------------------------------------------------------
# monitoring: dashboard and alerts
# ---------------------------------------------------------------------------------------------


def test_promql_metric_names_parser() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (controller, le) (rate(workqueue_work_duration_seconds_bucket"
        '{namespace=~"$namespace", pod=~"$pod"}[$__rate_interval]))) / on (controller) group_left '
        'max(controller_runtime_max_concurrent_reconciles) > 0 and absent(up{job="x"} == 1)'
    )
    assert promql_metric_names(expr) == {
        "workqueue_work_duration_seconds_bucket",
        "controller_runtime_max_concurrent_reconciles",
        "up",
    }


def test_dashboard_panels_query_exported_metrics() -> None:
    board = dashboard()
    assert runner_metrics.ENDPOINTS  # imported for its metrics, registered at import
    exported = registry_metric_names()
    panels = list(dashboard_panels(board["panels"]))
    assert panels
    used: set[str] = set()
    for panel in panels:
        targets = panel.get("targets", [])
        assert targets, f"panel {panel.get('title')!r} has no target"
        for target in targets:
            expr = target.get("expr", "")
            assert expr.strip(), f"panel {panel['title']!r} has an empty query"
            names = promql_metric_names(expr)
            assert names, f"panel {panel['title']!r}: no metric in {expr!r}"
            unknown = sorted(n for n in names if not is_allowed_metric(n, exported))
            assert not unknown, f"panel {panel['title']!r} uses unknown metrics {unknown}"
            used |= names
    # Every family the operator defines is on the dashboard somewhere.
    for family in (
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "workqueue_unfinished_work_seconds",
        "rest_client_requests_total",
        "agentic_operator_watch_restarts_total",
        "agentic_operator_monitored_jobs",
        "agentic_operator_runner_requests_total",
        "agentic_operator_runner_sync_pending",
        "leader_election_master_status",
    ):
        assert family in used


def test_dashboard_per_loop_panels_group_by_controller() -> None:
    for panel in dashboard_panels(dashboard()["panels"]):
        for target in panel["targets"]:
            expr = target["expr"]
            names = promql_metric_names(expr)
            if not any(n.startswith(("controller_runtime_", "workqueue_")) for n in names):
                continue
            grouping = promql_grouping_labels(expr)
            assert not grouping & {"pod", "instance"}, f"{panel['title']!r} groups by pod: {expr}"
            if grouping:
                assert "controller" in grouping, f"{panel['title']!r} does not group by controller: {expr}"


def test_dashboard_units_and_variables() -> None:
    board = dashboard()
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "pod"} <= variables
    for panel in dashboard_panels(board["panels"]):
        exprs = [t["expr"] for t in panel["targets"]]
        unit = panel["fieldConfig"]["defaults"].get("unit")
        if all(e.startswith("histogram_quantile(") for e in exprs):
            assert unit == "s", f"{panel['title']!r}: latency panel in {unit}"
        if all("rest_client_requests_total" in e for e in exprs):
            assert unit == "reqps", f"{panel['title']!r}: request rate in {unit}"
        if any("workqueue_unfinished_work_seconds" in e for e in exprs):
            assert not any("rate(workqueue_unfinished_work_seconds" in e for e in exprs), panel["title"]


def test_alerts_use_exported_metrics_and_are_annotated() -> None:
    exported = registry_metric_names()
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert rule["alert"].startswith("AgenticOperator")
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"].strip()
        assert rule["annotations"]["description"].strip()
        unknown = sorted(n for n in promql_metric_names(rule["expr"]) if not is_allowed_metric(n, exported))
        assert not unknown, f"{rule['alert']} uses unknown metrics {unknown}"
    exprs = " ".join(r["expr"] for r in rules)
    for needle in (
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_terminal_reconcile_errors_total",
        "controller_runtime_reconcile_panics_total",
        "workqueue_depth",
        "workqueue_longest_running_processor_seconds",
        'leader_election_master_status{name="agentic-operator.ambient-code.io"}',
        "agentic_operator_watch_restarts_total",
        "absent(up{",
    ):
        assert needle in exprs, f"no alert uses {needle}"


# ---------------------------------------------------------------------------------------------
# kustomize builds (client side only)
# ---------------------------------------------------------------------------------------------


def test_cluster_wide_install_builds() -> None:
    objects = kustomize(MANIFESTS)
    assert find(objects, "Namespace", "ambient-code")
    assert find(objects, "ClusterRole", "agentic-operator")
    assert find(objects, "ClusterRoleBinding", "agentic-operator")
    deployment = find(objects, "Deployment", "agentic-operator")
    service = find(objects, "Service", "agentic-operator-metrics")
    assert deployment and service
    for obj in objects:
        if obj["kind"] not in ("CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace") == "ambient-code", obj["metadata"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"},
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_namespaced_install_builds() -> None:
    objects = kustomize(NAMESPACED)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role = find(objects, "Role", "agentic-operator")
    binding = find(objects, "RoleBinding", "agentic-operator")
    assert role and binding
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "ambient-sessions"
    assert find(objects, "Role", "agentic-operator-leader-election")
    deployment = find(objects, "Deployment", "agentic-operator")
    assert deployment and deployment["metadata"]["namespace"] == "ambient-code"
    (container,) = containers(deployment)
    env = {e["name"]: e for e in container["env"]}
    assert env["WATCH_NAMESPACES"]["value"] == "ambient-sessions"
    assert "NAMESPACE_SELECTOR" not in env
    assert "OPERATOR_NAMESPACE" in env


def test_monitoring_components_build(tmp_path: Path) -> None:
    base = os.path.relpath(MANIFESTS, tmp_path)  # kustomize refuses absolute paths
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [base],
                "components": [
                    f"{base}/components/{name}" for name in ("servicemonitor", "alerts", "grafana-dashboard")
                ],
            }
        ),
        encoding="utf-8",
    )
    objects = kustomize(tmp_path)
    monitor = find(objects, "ServiceMonitor", "agentic-operator")
    rule = find(objects, "PrometheusRule", "agentic-operator")
    dashboard_map = find(objects, "ConfigMap", "agentic-operator-grafana-dashboard")
    assert monitor and rule and dashboard_map
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    service = find(objects, "Service", "agentic-operator-metrics")
    assert service
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard_map["data"]["agentic-operator.json"]) == dashboard()


# ---------------------------------------------------------------------------------------------
# install layout: CRDs apart, pods fit OpenShift and the restricted Pod Security Standard
# ---------------------------------------------------------------------------------------------


def crd_files() -> set[str]:
    return {p.name for p in (MANIFESTS / "crd").glob("*.yaml") if p.name != "kustomization.yaml"}


def test_crds_are_installed_apart_and_never_with_the_operator() -> None:
    """`kubectl delete -k manifests/` must never delete a CRD: that would delete every session."""
    crds = kustomize(MANIFESTS / "crd")
    assert {o["kind"] for o in crds} == {"CustomResourceDefinition"}
    assert {o["metadata"]["name"] + ".yaml" for o in crds} == crd_files()
    assert load_yaml(MANIFESTS / "crd" / "kustomization.yaml")["resources"] == sorted(crd_files())
    for path in kustomization_paths():
        if path.parent != MANIFESTS / "crd":
            refs = [(path.parent / ref).resolve() for ref in referenced_paths(load_yaml(path))]
            assert (MANIFESTS / "crd").resolve() not in refs, f"{path} includes the CRDs"
    for directory in (MANIFESTS, NAMESPACED):
        kinds = {o["kind"] for o in kustomize(directory)}
        assert "CustomResourceDefinition" not in kinds, directory


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        template = (obj.get("spec") or {}).get("template")
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job") and template:
            yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]


def rendered_overlays() -> list[Path]:
    """Every kustomization that renders workloads: manifests/ and each overlay."""
    return [MANIFESTS, *sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))]


@pytest.mark.parametrize("directory", rendered_overlays(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_overlay_pins_no_ids_and_meets_restricted_pod_security(directory: Path) -> None:
    templates = list(pod_templates(kustomize(directory)))
    assert templates, f"{directory} renders no pod template"
    for where, pod in templates:
        assert fixed_ids(pod) == [], f"{where} pins ids: OpenShift's restricted-v2 SCC rejects them"
        assert restricted_violations(pod) == [], where


def test_pod_security_checks_catch_what_they_look_for() -> None:
    pod = {
        "securityContext": {"runAsUser": 0, "fsGroup": 1000},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    found = restricted_violations(pod)
    for needle in (
        "hostPath",
        "runAsUser 0",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccomp",
        "drop ALL",
        "SYS_ADMIN",
    ):
        assert any(needle in v for v in found), (needle, found)
    assert fixed_ids(pod) == ["pod: runAsUser", "pod: fsGroup"]
