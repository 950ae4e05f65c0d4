"""A session's children written straight to the API, with the operator's own manifest builders.

The limit measurement and the scale mode both need "what the operator writes for a session, without
the operator". Building the manifests with `controller.reconcilers` keeps them byte for byte what the
operator would send (same labels, owner references, env, sizes), so the API server does the same work.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller import conditions as c
from controller.config import OperatorConfig
from controller.kube import Kube
from controller.names import ANNOTATION_RUNNER_SA, runner_job_name, runner_sa_name
from controller.reconcilers import children as build
from controller.reconcilers.runner_job import build_runner_job
from controller.reconcilers.token_secrets import ANNOTATION_RUN
from controller.resources import (
    JOBS,
    PVCS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    SESSIONS,
)

Key = tuple[str, str]
RUNNER_IMAGE = "registry.invalid/agentic/runner:bench"
# Runner pods must fit the kwok nodes (32 CPUs, 1000 pods each): with the operator's default request
# of 500m only 64 pods would fit a node and most of a large burst would never be scheduled.
RUNNER_CPU_REQUEST = "10m"
RUNNER_MEMORY_REQUEST = "32Mi"
CONFIG = OperatorConfig(
    runner_image=RUNNER_IMAGE,
    runner_cpu_request=RUNNER_CPU_REQUEST,
    runner_memory_request=RUNNER_MEMORY_REQUEST,
)
# The creates the operator must make for one session: seven children plus the TokenRequest whose
# token goes into the Secret.
CREATES_PER_SESSION = 8
# The one metadata write: annotation ambient-code.io/runner-sa, set once the runner Job exists.
ANNOTATION_WRITES_PER_SESSION = 1
# The phases a new session passes through on its way to Running, one status write each (the operator
# writes Creating with its first status; the benchmark's watch reports the path it actually takes).
PHASES_TO_RUNNING = (c.CREATING, c.RUNNING)


def session_names(count: int, namespaces: list[str]) -> list[Key]:
    """Session i goes to namespace i mod M, so namespaces hold equal shares."""
    return [(namespaces[i % len(namespaces)], f"bench-{i:05d}") for i in range(count)]


def session_manifest(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"initialPrompt": "benchmark session", "displayName": name},
    }


def create_sessions(
    kube: Kube, keys: list[Key], concurrency: int, on_sent: Callable[[Key], None] | None = None
) -> list[dict[str, Any]]:
    """Creates the sessions with `concurrency` requests in flight; returns them as the server stored them."""

    def create(key: Key) -> dict[str, Any]:
        if on_sent is not None:
            on_sent(key)
        return kube.create(SESSIONS, key[0], session_manifest(*key))

    return parallel(create, keys, concurrency)


def parallel(work: Callable[[Any], Any], items: Iterable[Any], concurrency: int) -> list[Any]:
    """Runs `work` over `items` on a thread pool; the first exception is raised once all are done."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="bench") as pool:
        return list(pool.map(work, items))


def create_children(
    kube: Kube, session: dict[str, Any], *, suspend_job: bool, with_secret: bool = True
) -> int:
    """PVC, ServiceAccount, Role, RoleBinding, [TokenRequest + Secret], Job, Service: the operator's order.

    Returns the number of requests made. A suspended Job costs the API server the same create, but
    keeps kube-controller-manager from creating pods that would load the machine afterwards.
    """
    namespace = session["metadata"]["namespace"]
    requests = 0
    for resource, manifest in (
        (PVCS, build.build_workspace_pvc(session, CONFIG)),
        (SERVICE_ACCOUNTS, build.build_runner_service_account(session)),
        (ROLES, build.build_runner_role(session)),
        (ROLE_BINDINGS, build.build_runner_role_binding(session)),
    ):
        kube.create(resource, namespace, manifest)
        requests += 1
    if with_secret:
        requests += create_token_secret(kube, session)
    job, _ = build_runner_job(session, CONFIG, False)
    if suspend_job:
        job["spec"]["suspend"] = True
    kube.create(JOBS, namespace, job)
    kube.create(SERVICES, namespace, build.build_session_service(session, CONFIG))
    # The annotation the platform's backend checks the runner's identity against.
    name = session["metadata"]["name"]
    kube.patch(
        SESSIONS, namespace, name, {"metadata": {"annotations": {ANNOTATION_RUNNER_SA: runner_sa_name(name)}}}
    )
    return requests + 3


def create_token_secret(kube: Kube, session: dict[str, Any]) -> int:
    """A TokenRequest for the runner ServiceAccount, then the Secret holding it, as the token loop does."""
    namespace, name = session["metadata"]["namespace"], session["metadata"]["name"]
    token, _ = kube.create_token(
        namespace, runner_sa_name(name), audiences=[], expiration_seconds=CONFIG.token_expiration
    )
    secret = build.build_token_secret(session, token, secrets.token_urlsafe(32), now())
    secret["metadata"]["annotations"][ANNOTATION_RUN] = "0"
    kube.create(SECRETS, namespace, secret)
    return 2


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: str, reason: str, message: str, stamp: str, generation: int) -> c.Condition:
    return c.Condition(kind, status, reason, message, stamp, generation)


def status_patch(session: dict[str, Any], phase: str, node: str = "kwok-node-0") -> dict[str, Any]:
    """The status the operator writes when the session enters `phase` (Creating or Running).

    The Running one is exactly what the operator's loops would derive for a session whose runner pod
    runs on `node`, so an operator starting on top of it finds nothing to write.
    """
    name = session["metadata"]["name"]
    generation = int(session["metadata"].get("generation") or 1)
    stamp = now()

    def cond(kind: str, status: str, reason: str, message: str) -> c.Condition:
        return _condition(kind, status, reason, message, stamp, generation)

    status: dict[str, Any] = {"phase": phase, "startTime": stamp, "observedGeneration": generation}
    conditions = [
        cond(c.RECONCILED, c.TRUE, c.SPEC_APPLIED, "the spec is valid and applied"),
        cond(c.PVC_READY, c.TRUE, "Ready", f"workspace {build.workspace_claim_name(session)}"),
        cond(c.SECRETS_READY, c.TRUE, "TokenIssued", f"runner token issued at {stamp}"),
        cond(c.JOB_CREATED, c.TRUE, "Created", f"runner Job {runner_job_name(name)} created"),
    ]
    if phase == c.CREATING:
        conditions.append(cond(c.READY, c.FALSE, c.CREATING, "waiting for the runner to start"))
    if phase == c.RUNNING:
        conditions += [
            cond(c.POD_SCHEDULED, c.TRUE, "Scheduled", f"scheduled on {node}"),
            cond(c.RUNNER_STARTED, c.TRUE, "ContainerRunning", "the runner container is running"),
            cond(c.READY, c.TRUE, c.RUNNING, "the runner is running"),
        ]
    status["conditions"] = c.condition_list(conditions)
    return {"status": status}


def patch_status(kube: Kube, session: dict[str, Any], body: dict[str, Any]) -> None:
    meta = session["metadata"]
    kube.patch(SESSIONS, meta["namespace"], meta["name"], body, subresource="status")
