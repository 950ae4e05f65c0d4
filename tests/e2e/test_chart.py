"""The Helm chart: it lints, renders for every example values file, grants exactly what rbac/ grants,
and, installed on a real API server, runs a session to Running as its own ServiceAccount.

helm comes from hack/build-tools.sh (pinned, cached). The rendering tests need no cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import config
from controller.kube import Kube
from controller.resources import NAMESPACES, PODS
from tests.conftest import Cluster
from tests.e2e.conftest import OperatorFactory, create_session, phase_is, wait_session
from tests.e2e.helpers import wait_for
from tests.e2e.test_deploy import service_account_kubeconfig
from tests.e2e.tools import run, tool
from tests.unit.pod_security import fixed_ids, restricted_violations
from tests.unit.test_manifests import rbac_triples

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "agentic-operator"
VALUES = [None, *sorted((CHART / "ci").glob("*.yaml"))]
RELEASE_NAMESPACE = "ambient-code"


def rbac_rules(name: str) -> set[tuple[str, str, str]]:
    return rbac_triples(yaml.safe_load((REPO / "rbac" / name).read_text())["rules"])


def render(values: Path | None, *options: str, namespace: str = RELEASE_NAMESPACE) -> list[dict[str, Any]]:
    command = [tool("helm"), "template", "agentic-operator", str(CHART), "-n", namespace, *options]
    if values is not None:
        command += ["-f", str(values)]
    result = run(*command)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def values_id(values: Path | None) -> str:
    return "default" if values is None else values.stem


def test_helm_lint_strict() -> None:
    for values in VALUES:
        extra = ["-f", str(values)] if values is not None else []
        linted = run(tool("helm"), "lint", "--strict", str(CHART), *extra)
        assert "1 chart(s) linted, 0 chart(s) failed" in linted.stdout, linted.stdout
        assert "[ERROR]" not in linted.stdout and "[WARNING]" not in linted.stdout, linted.stdout


def test_chart_crds_are_the_manifests_crds() -> None:
    """crds/ holds every CRD of manifests/crd (links, resolved by `helm package`), nothing else."""
    listed = yaml.safe_load((REPO / "manifests" / "crd" / "kustomization.yaml").read_text())["resources"]
    in_chart = sorted(p.name for p in (CHART / "crds").iterdir())
    assert in_chart == sorted(listed)
    for name in listed:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "manifests" / "crd" / name).read_bytes()


def test_packaged_chart_is_self_contained(tmp_path: Path) -> None:
    """`helm package` resolves the links: the archive renders what the source directory renders."""
    run(tool("helm"), "package", str(CHART), "-d", str(tmp_path))
    (archive,) = tmp_path.glob("agentic-operator-*.tgz")
    packaged = run(tool("helm"), "template", "agentic-operator", str(archive), "-n", RELEASE_NAMESPACE)
    assert [d for d in yaml.safe_load_all(packaged.stdout) if d] == render(None)


@pytest.mark.parametrize("values", VALUES, ids=values_id)
def test_rendered_chart(values: Path | None) -> None:
    objects = render(values)
    given = yaml.safe_load(values.read_text()) if values is not None else {}
    (deployment,) = of_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert fixed_ids(pod) == [], "OpenShift's restricted-v2 SCC rejects pinned ids"
    assert restricted_violations(pod) == []
    (container,) = pod["containers"]
    known = {str(f.metadata["env"]) for f in config.OperatorConfig.__dataclass_fields__.values()}
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))
    assert set(names) <= known, sorted(set(names) - known)
    env = {e["name"]: e.get("value") for e in container["env"]}
    listed = (given.get("namespaces") or {}).get("list") or []

    # RBAC: exactly the rules of rbac/, as ClusterRole or as one Role per listed namespace.
    cluster_rules = rbac_rules("cluster_role.yaml")
    roles = {r["metadata"]["name"]: r for r in of_kind(objects, "Role")}
    account = pod["serviceAccountName"]
    if listed:
        assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
        assert env["WATCH_NAMESPACES"] == ",".join(listed) and "NAMESPACE_SELECTOR" not in env
        per_namespace = [r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] in listed]
        assert sorted(r["metadata"]["namespace"] for r in per_namespace) == sorted(listed)
        for role in per_namespace:
            assert rbac_triples(role["rules"]) == {t for t in cluster_rules if t[1] != "namespaces"}
    else:
        (cluster_role,) = of_kind(objects, "ClusterRole")
        assert rbac_triples(cluster_role["rules"]) == cluster_rules
        (binding,) = of_kind(objects, "ClusterRoleBinding")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}
        ]
        assert env["NAMESPACE_SELECTOR"] == "ambient-code.io/managed=true"
    leader = roles.get(f"{account}-leader-election")
    elect = (given.get("leaderElection") or {}).get("enabled", True)
    assert (leader is not None) == elect
    assert container["args"] == ["run", "--leader-elect" if elect else "--no-leader-elect"]
    if leader is not None:
        assert rbac_triples(leader["rules"]) == rbac_rules("leader_election_role.yaml")

    # The metrics Service selects the pod; a ServiceMonitor selects the Service.
    (service,) = of_kind(objects, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert env["METRICS_BIND_ADDRESS"] == f":{port}"
    for monitor in of_kind(objects, "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_monitoring_switches_ship_the_kustomize_alerts_and_dashboard() -> None:
    objects = render(CHART / "ci" / "monitoring-values.yaml")
    (rule,) = of_kind(objects, "PrometheusRule")
    alerts = yaml.safe_load(
        (REPO / "manifests" / "components" / "alerts" / "prometheusrule.yaml").read_text()
    )
    assert rule["spec"] == alerts["spec"]
    (dashboard,) = of_kind(objects, "ConfigMap")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = REPO / "manifests" / "components" / "grafana-dashboard" / "agentic-operator.json"
    assert json.loads(dashboard["data"]["agentic-operator.json"]) == json.loads(board.read_text())
    assert not of_kind(render(None), "PrometheusRule")  # switched off by default


def _apply(kubectl: str, cluster: Cluster, manifests: str, home: Path) -> None:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(home), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [kubectl, "apply", "-f", "-"], input=manifests, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_chart_install_runs_a_session_as_its_service_account(
    kube: Kube,
    cluster: Cluster,
    kubectl: str,
    namespace: str,
    tmp_path: Path,
    start_operator: OperatorFactory,
) -> None:
    """The rendered chart applies; its pod passes restricted Pod Security; its grants suffice.

    The release namespace enforces the restricted Pod Security Standard, so the API server itself
    admits (or rejects) the operator pod the chart describes. The operator then runs here, with
    the token of the chart's ServiceAccount, and takes a session to Running.
    """
    release = "e2e-helm-" + namespace[-6:]
    kube.create(
        NAMESPACES,
        None,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": release, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        },
    )
    try:
        rendered = run(
            tool("helm"),
            "template",
            "e2e",
            str(CHART),
            "-n",
            release,
            "--set",
            f"namespaces.list={{{namespace}}}",
            "--set",
            "image.repository=registry.invalid/agentic-operator",
        ).stdout
        _apply(kubectl, cluster, rendered, tmp_path)

        def operator_pod_admitted() -> bool:
            pods = kube.list(PODS, release, label_selector="app.kubernetes.io/instance=e2e")["items"]
            return bool(pods)

        wait_for(operator_pod_admitted, 60, message="the chart's operator pod admitted under restricted PSS")
        as_operator = service_account_kubeconfig(
            kube, cluster, tmp_path / "operator.kubeconfig", namespace=release, account="agentic-operator"
        )
        start_operator(
            [namespace],
            kubeconfig=as_operator,
            args=["--leader-elect", "--leader-election-namespace", release, "--operator-namespace", release],
        )
        create_session(kube, "helm", namespace)
        wait_session(kube, namespace, "helm", phase_is("Running"), timeout=90)
    finally:
        kube.delete(NAMESPACES, None, release, propagation="Background")
