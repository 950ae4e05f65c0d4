"""A session's life on a real API server: create, run, stop, restart, continue, fail, delete."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

from controller.api_error import ApiError
from controller.kube import Kube
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_PARENT_SESSION,
    runner_job_name,
    runner_role_name,
    runner_rolebinding_name,
    runner_sa_name,
    session_service_name,
    token_secret_name,
    workspace_pvc_name,
)
from controller.resources import (
    JOBS,
    PVCS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    SESSIONS,
    Resource,
)
from tests.e2e.conftest import (
    OperatorFactory,
    condition_of,
    create_session,
    exists,
    gone_or_going,
    phase_is,
    runner_pods,
    wait_event,
    wait_session,
)
from tests.e2e.helpers import wait_for
from tests.e2e.runner_double import RunnerDouble


def _runner_env(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    job = kube.get(JOBS, namespace, runner_job_name(name))
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"] if "value" in e}


def test_creation_reaches_running_with_owned_children(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    # The spec names repos and a workflow: status reports them applied only once a runner confirms.
    double = RunnerDouble(kube).start()
    start_operator([namespace], args=["--runner-url-template", double.url_template])
    spec = {
        "llmSettings": {"model": "claude-test", "temperature": 0.2},
        "repos": [{"url": "https://github.com/example/app.git", "branch": "dev"}],
        "activeWorkflow": {"gitUrl": "https://github.com/example/flows.git", "path": "review"},
    }
    created = create_session(kube, "first", namespace, spec=spec)
    try:
        session = wait_session(
            kube,
            namespace,
            "first",
            lambda s: (
                phase_is("Running")(s)
                and condition_of(s, "ReposReconciled").get("status") == "True"
                and condition_of(s, "WorkflowReconciled").get("status") == "True"
            ),
            what="phase Running, repos and workflow confirmed by the runner",
        )
    finally:
        double.stop()
    uid = created["metadata"]["uid"]
    for resource, child in (
        (PVCS, workspace_pvc_name("first")),
        (SERVICE_ACCOUNTS, runner_sa_name("first")),
        (ROLES, runner_role_name("first")),
        (ROLE_BINDINGS, runner_rolebinding_name("first")),
        (SECRETS, token_secret_name("first")),
        (JOBS, runner_job_name("first")),
        (SERVICES, session_service_name("first")),
    ):
        obj = kube.get(resource, namespace, child)
        refs = obj["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [
            ("AgenticSession", uid, True)
        ], child
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "agentic-operator"
    for kind in (
        "Reconciled",
        "PVCReady",
        "SecretsReady",
        "JobCreated",
        "PodScheduled",
        "RunnerStarted",
        "Ready",
        "ReposReconciled",
        "WorkflowReconciled",
        "ModelReconciled",
    ):
        cond = condition_of(session, kind)
        assert cond.get("status") == "True", (kind, cond)
        assert cond.get("observedGeneration") == session["metadata"]["generation"], (kind, cond)
    assert session["status"]["observedGeneration"] == session["metadata"]["generation"]
    assert session["status"].get("startTime")
    assert [r["status"] for r in session["status"]["reconciledRepos"]] == ["Ready"]
    assert session["status"]["reconciledWorkflow"]["status"] == "Active"
    assert session["status"]["reconciledModel"]["model"] == "claude-test"
    env = _runner_env(kube, namespace, "first")
    assert env["LLM_MODEL"] == "claude-test" and env["LLM_TEMPERATURE"] == "0.20"
    assert json.loads(env["REPOS_JSON"])[0]["url"] == "https://github.com/example/app.git"
    assert env["ACTIVE_WORKFLOW_GIT_URL"] == "https://github.com/example/flows.git"
    assert env["AGENTIC_SESSION_NAME"] == "first"
    assert "IS_RESUME" not in env
    service = kube.get(SERVICES, namespace, session_service_name("first"))
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("agui", 8001)]
    wait_event(kube, namespace, "first", "Running")


def _request(kube: Kube, namespace: str, name: str, phase: str, **extra: str) -> None:
    kube.patch(
        SESSIONS, namespace, name, {"metadata": {"annotations": {ANNOTATION_DESIRED_PHASE: phase, **extra}}}
    )


def test_stop_keeps_workspace_and_restart_resumes(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "cycle", namespace)
    wait_session(kube, namespace, "cycle", phase_is("Running"))

    _request(kube, namespace, "cycle", "Stopped", **{"ambient-code.io/stop-requested-at": "now"})
    # Status and annotations are separate writes: the request is cleared right after the phase.
    stopped = wait_session(
        kube,
        namespace,
        "cycle",
        lambda s: (
            phase_is("Stopped")(s)
            and not {ANNOTATION_DESIRED_PHASE, "ambient-code.io/stop-requested-at"}
            & set(s["metadata"].get("annotations") or {})
        ),
        what="phase Stopped and the stop request cleared",
    )
    assert stopped["status"]["stoppedReason"] == "user"
    assert stopped["status"].get("completionTime")
    assert not exists(kube, JOBS, namespace, runner_job_name("cycle"))
    wait_for(lambda: not runner_pods(kube, namespace, "cycle"), 30, message="runner pods deleted")
    assert not exists(kube, SERVICES, namespace, session_service_name("cycle"))
    kube.get(PVCS, namespace, workspace_pvc_name("cycle"))  # the workspace is kept
    wait_event(kube, namespace, "cycle", "Stopped")

    _request(kube, namespace, "cycle", "Running")
    running = wait_session(
        kube,
        namespace,
        "cycle",
        lambda s: (
            phase_is("Running")(s)
            and not (s["metadata"].get("annotations") or {}).get(ANNOTATION_DESIRED_PHASE)
        ),
        what="Running again",
    )
    assert not running["status"].get("completionTime") and not running["status"].get("stoppedReason")
    assert _runner_env(kube, namespace, "cycle").get("IS_RESUME") == "true"


def test_stop_while_creating(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    start_operator(
        [namespace], args=["--runner-node-selector", "no-such-node=true", "--unschedulable-grace", "1"]
    )
    create_session(kube, "early", namespace)
    wait_session(
        kube,
        namespace,
        "early",
        lambda s: condition_of(s, "PodScheduled").get("status") == "False",
        what="PodScheduled=False",
    )
    _request(kube, namespace, "early", "Stopped")
    wait_session(kube, namespace, "early", phase_is("Stopped"))
    assert not exists(kube, JOBS, namespace, runner_job_name("early"))


def test_continuation_reuses_parent_workspace(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "parent", namespace)
    wait_session(kube, namespace, "parent", phase_is("Running"))
    create_session(kube, "child", namespace, annotations={ANNOTATION_PARENT_SESSION: "parent"})
    wait_session(kube, namespace, "child", phase_is("Running"))
    job = kube.get(JOBS, namespace, runner_job_name("child"))
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [workspace_pvc_name("parent")]
    assert not exists(kube, PVCS, namespace, workspace_pvc_name("child"))
    assert _runner_env(kube, namespace, "child")["PARENT_SESSION_ID"] == "parent"


def test_continuation_of_missing_parent_fails_clearly(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "orphan", namespace, annotations={ANNOTATION_PARENT_SESSION: "never-existed"})
    failed = wait_session(kube, namespace, "orphan", phase_is("Failed"))
    cond = condition_of(failed, "PVCReady")
    assert cond["reason"] == "ParentWorkspaceMissing"
    assert "never-existed" in cond["message"] and workspace_pvc_name("never-existed") in cond["message"]
    assert condition_of(failed, "Ready")["reason"] == "ParentWorkspaceMissing"
    assert not exists(kube, JOBS, namespace, runner_job_name("orphan"))
    wait_event(kube, namespace, "orphan", "ParentWorkspaceMissing")


def test_invalid_spec_fails_naming_the_field(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "bad", namespace, spec={"environmentVariables": {"1-NOT-A-NAME": "x"}})
    failed = wait_session(kube, namespace, "bad", phase_is("Failed"))
    cond = condition_of(failed, "Reconciled")
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec"
    assert "spec.environmentVariables" in cond["message"] and "1-NOT-A-NAME" in cond["message"]
    for resource, child in (
        (PVCS, workspace_pvc_name("bad")),
        (JOBS, runner_job_name("bad")),
        (SERVICE_ACCOUNTS, runner_sa_name("bad")),
    ):
        assert not exists(kube, resource, namespace, child), child
    event = wait_event(kube, namespace, "bad", "InvalidSpec")
    assert event["type"] == "Warning" and "spec.environmentVariables" in event["message"]


def test_protected_env_is_not_applied_and_warned(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(
        kube, "env", namespace, spec={"environmentVariables": {"LLM_MODEL": "evil", "MY_VAR": "ok"}}
    )
    wait_session(kube, namespace, "env", phase_is("Running"))
    env = _runner_env(kube, namespace, "env")
    assert env["LLM_MODEL"] != "evil" and env["MY_VAR"] == "ok"
    event = wait_event(kube, namespace, "env", "ProtectedEnvIgnored")
    assert "LLM_MODEL" in event["message"] and event["type"] == "Warning"


def test_long_name_works(kube: Kube, namespace: str, start_operator: OperatorFactory) -> None:
    start_operator([namespace])
    name = "a-session-with-a-rather-long-name-" + "x" * 36
    assert len(name) == 70
    create_session(kube, name, namespace)
    wait_session(kube, namespace, name, phase_is("Running"))
    for child in (runner_job_name(name), session_service_name(name), workspace_pvc_name(name)):
        assert len(child) <= 63
    kube.get(SERVICES, namespace, session_service_name(name))


def test_deleting_session_collects_children(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "doomed", namespace)
    wait_session(kube, namespace, "doomed", phase_is("Running"))
    kube.delete(SESSIONS, namespace, "doomed", propagation="Background")
    children = (
        (PVCS, workspace_pvc_name("doomed")),
        (JOBS, runner_job_name("doomed")),
        (SECRETS, token_secret_name("doomed")),
        (SERVICES, session_service_name("doomed")),
        (SERVICE_ACCOUNTS, runner_sa_name("doomed")),
        (ROLES, runner_role_name("doomed")),
    )
    # The garbage collector rediscovers new resource types every 30 s, so a fresh CRD can lag.
    wait_for(
        lambda: all(gone_or_going(kube, r, namespace, n) for r, n in children),
        90,
        message="children garbage-collected",
    )


def test_concurrent_annotation_writer_loses_no_status(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "busy", namespace)
    stop = threading.Event()
    writes = [0]

    def hammer() -> None:
        while not stop.is_set():
            try:
                current = kube.get(SESSIONS, namespace, "busy")
                annotations = {"e2e.ambient-code.io/counter": str(writes[0])}
                kube.patch(
                    SESSIONS,
                    namespace,
                    "busy",
                    {
                        "metadata": {
                            "annotations": annotations,
                            "resourceVersion": current["metadata"]["resourceVersion"],
                        }
                    },
                )
                writes[0] += 1
            except ApiError:
                pass

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        # Conflicting writes can exhaust a write's conflict retries; the reconcile is then requeued
        # with backoff and the write lands later. Every loop's conditions must arrive regardless.
        kinds = ("Reconciled", "PVCReady", "SecretsReady", "JobCreated", "RunnerStarted", "Ready")
        running = wait_session(
            kube,
            namespace,
            "busy",
            lambda s: (
                phase_is("Running")(s) and all(condition_of(s, k).get("status") == "True" for k in kinds)
            ),
            timeout=90,
            what="Running with every condition written",
        )
    finally:
        stop.set()
        thread.join(5)
    assert writes[0] > 10, "the concurrent writer barely ran; the test proves nothing"
    assert running["status"]["observedGeneration"] == running["metadata"]["generation"]


def test_kubectl_shows_columns_and_events(
    kube: Kube, namespace: str, start_operator: OperatorFactory, cluster: Any, kubectl: str, tmp_path: Path
) -> None:
    start_operator([namespace])
    create_session(kube, "shown", namespace, spec={"llmSettings": {"model": "claude-shown"}})
    wait_session(kube, namespace, "shown", phase_is("Running"))
    wait_event(kube, namespace, "shown", "Running")
    env = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    table = subprocess.run(
        [kubectl, "get", "as", "-n", namespace], capture_output=True, text=True, env=env, check=True
    ).stdout
    header, row = table.splitlines()[0].split(), table.splitlines()[1].split()
    assert header == ["NAME", "PHASE", "MODEL", "READY", "AGE"], table
    assert row[:4] == ["shown", "Running", "claude-shown", "Running"], table
    described = subprocess.run(
        [kubectl, "describe", "as", "shown", "-n", namespace],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "Creating" in described and "Running" in described


def test_secret_never_holds_token_in_status(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "tok", namespace)
    session = wait_session(kube, namespace, "tok", phase_is("Running"))
    secret = kube.get(SECRETS, namespace, token_secret_name("tok"))
    tokens = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert all(len(t) > 20 for t in tokens)
    text = json.dumps(session)
    assert not any(t in text for t in tokens)


def test_refused_child_is_reported_not_only_logged(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    quotas = Resource("", "v1", "resourcequotas", "ResourceQuota")
    kube.create(
        quotas,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-volumes"},
            "spec": {"hard": {"persistentvolumeclaims": "0"}},
        },
    )
    wait_for(
        lambda: (kube.get(quotas, namespace, "no-volumes").get("status") or {}).get("hard"),
        30,
        message="quota active",
    )
    start_operator([namespace])
    create_session(kube, "quota", namespace)
    session = wait_session(
        kube,
        namespace,
        "quota",
        lambda s: condition_of(s, "Reconciled").get("reason") == "ProvisioningForbidden",
        what="Reconciled=False/ProvisioningForbidden",
    )
    message = condition_of(session, "Reconciled")["message"]
    assert "403" in message and "persistentvolumeclaims" in message, message
    event = wait_event(kube, namespace, "quota", "ProvisioningForbidden")
    assert event["type"] == "Warning"
    # Lifting the quota lets the retry (after a growing delay) succeed: nothing is lost.
    kube.delete(quotas, namespace, "no-volumes")
    wait_session(kube, namespace, "quota", phase_is("Running"), timeout=90)


def test_acknowledging_a_request_never_erases_a_newer_one(kube: Kube, namespace: str, crd: Any) -> None:
    """The operator clears a stop request it acted on; a restart asked for meanwhile must survive."""
    from controller.config import OperatorConfig
    from controller.events import EventRecorder
    from controller.reconcilers.annotations import patch_annotations
    from controller.reconcilers.context import Caches, Context
    from controller.watchers import kinds
    from controller.watchers.cache import KindCache
    from controller.watchers.informer import WatchSettings

    create_session(kube, "cas", namespace, annotations={ANNOTATION_DESIRED_PHASE: "Stopped"})
    decided_on = kube.get(SESSIONS, namespace, "cas")  # what a reconcile read before acting
    _request(kube, namespace, "cas", "Running")  # the person changes their mind meanwhile
    session_cache = KindCache(
        kube, kinds.SESSION_SPEC, WatchSettings()
    )  # never started: written objects only
    ctx = Context(OperatorConfig(), kube, EventRecorder(kube), Caches(*([session_cache] * 9)))
    patch_annotations(ctx, decided_on, {ANNOTATION_DESIRED_PHASE: None, "ambient-code.io/stop-reason": None})
    annotations = kube.get(SESSIONS, namespace, "cas")["metadata"].get("annotations") or {}
    assert annotations.get(ANNOTATION_DESIRED_PHASE) == "Running"

    # Keys still holding what was decided on are changed as asked.
    current = kube.get(SESSIONS, namespace, "cas")
    assert patch_annotations(ctx, current, {ANNOTATION_DESIRED_PHASE: None})
    assert ANNOTATION_DESIRED_PHASE not in (
        kube.get(SESSIONS, namespace, "cas")["metadata"].get("annotations") or {}
    )
