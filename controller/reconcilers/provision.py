"""Provisioning, a step of the sessions loop: a session's workspace, identity, token and runner.

Each child is created only when the cache does not show it (ensure_children); a same-named object that
is not ours stops provisioning with NameConflict. The runner token is issued here, just before the
runner Job that mounts it, so that a new session costs one reconcile and one status write; the
token secrets loop keeps it fresh from then on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from controller import conditions as c
from controller.events import WARNING
from controller.names import (
    ANNOTATION_FORCE_EXECUTE_PROMPT,
    ANNOTATION_RUNNER_SA,
    runner_job_name,
    runner_role_name,
    runner_rolebinding_name,
    runner_sa_name,
    session_service_name,
    temp_content_pod_name,
)
from controller.platform.registry import PERSISTENCE_PVC, Runtime, flag_runtime
from controller.platform.runner_spec import started_status
from controller.reconcile import Result
from controller.reconcilers import children as build
from controller.reconcilers import runner_inputs, token_secrets
from controller.reconcilers.annotations import patch_annotations
from controller.reconcilers.context import Context, Ensured, create_child, owned_by
from controller.reconcilers.model_gate import WAITING_FOR_MODEL, ModelGate, check_model
from controller.reconcilers.runner_job import build_runner_job
from controller.reconcilers.runner_state import job_finished
from controller.reconcilers.session_children import LOOP, Child, ensure_children, stop_on_conflict
from controller.resources import JOBS, PVCS, ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS, SERVICES
from controller.status import StatusDraft

JOB_RECREATED = "Recreated"
# On a runner Job: the session's run (status.restartCount) it was made for.
ANNOTATION_RUN = "ambient-code.io/run"
WAITING_FOR_RUNNER = "WaitingForRunner"


def _parent_workspace(ctx: Context, session: Mapping[str, Any], parent: str) -> tuple[Result | None, str]:
    """A continuation reuses its parent's workspace PVC; when that is gone the session fails."""
    namespace = session["metadata"]["namespace"]
    claim = build.workspace_claim_name(session)
    found = ctx.caches.pvcs.get(namespace, claim) is not None
    if found or ctx.kube.get_or_none(PVCS, namespace, claim) is not None:
        return None, f"reusing the workspace {claim} of parent session {parent}"
    message = (
        f"continuation of session {parent!r} needs its workspace PVC {claim!r}, which does not "
        f"exist in namespace {namespace}; the parent session's workspace is gone"
    )

    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.PVC_READY, c.FALSE, c.PARENT_WORKSPACE_MISSING, message)
        if draft.get("completionTime") is None:
            draft.set("completionTime", c.now_rfc3339())

    ctx.write_status(session, LOOP, describe)
    ctx.recorder.record(session, WARNING, c.PARENT_WORKSPACE_MISSING, message)
    return Result.done(), ""


def is_resume(session: Mapping[str, Any]) -> bool:
    """A session started again after it stopped or ended resumes its previous run."""
    count = (session.get("status") or {}).get("restartCount")
    return isinstance(count, int) and count > 0


def run_number(session: Mapping[str, Any]) -> str:
    """Which run of the session this is (status.restartCount), as recorded on its runner Job."""
    count = (session.get("status") or {}).get("restartCount")
    return str(count if isinstance(count, int) else 0)


def _previous_run(session: Mapping[str, Any], job: Mapping[str, Any], recorded: c.Condition | None) -> bool:
    """A Job that this run has not recorded as its own, made for an earlier run.

    The run is read from the Job's annotation; a Job from before the annotation existed counts as
    an earlier run's once it has finished (or is going). The Job controller may mark the Job
    Complete only after the session has already ended and been restarted, so the annotation, not
    the Job's state, is what tells.
    """
    if recorded is not None and recorded.is_true:
        return False
    run = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RUN)
    if run is not None:
        return bool(run != run_number(session))
    return job_finished(job) or bool((job.get("metadata") or {}).get("deletionTimestamp"))


def _blocked(ctx: Context, session: Mapping[str, Any], blocked: runner_inputs.Blocked) -> Result:
    """The session waits in Pending; the watch on what it waits for wakes it."""
    ctx.write_status(
        session, LOOP, lambda d: d.set_condition(blocked.condition, c.FALSE, blocked.reason, blocked.message)
    )
    ctx.recorder.record(session, WARNING, blocked.reason, blocked.message)
    return Result.done()


def _runtime(ctx: Context, session: Mapping[str, Any]) -> tuple[Runtime | None, runner_inputs.Blocked | None]:
    """The registry decides a runner that is still to be created; a created one keeps what it has."""
    meta = session["metadata"]
    if ctx.caches.jobs.get(meta["namespace"], runner_job_name(meta["name"])) is None:
        return runner_inputs.select_runtime(ctx, session)
    runtime, _ = runner_inputs.select_runtime(ctx, session)
    if runtime is None:
        runtime = flag_runtime(ctx.config.default_runner_type)
    runner_inputs.refresh_copies(ctx, session)
    return runtime, None


def provision(ctx: Context, session: Mapping[str, Any], conditions: Mapping[str, c.Condition]) -> Result:
    meta = session["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    runtime, blocked = _runtime(ctx, session)
    if blocked is not None or runtime is None:
        assert blocked is not None
        return _blocked(ctx, session, blocked)
    children = [
        Child(
            "ServiceAccount",
            ctx.caches.service_accounts,
            SERVICE_ACCOUNTS,
            runner_sa_name(name),
            lambda: build.build_runner_service_account(session),
        ),
        Child(
            "Role", ctx.caches.roles, ROLES, runner_role_name(name), lambda: build.build_runner_role(session)
        ),
        Child(
            "RoleBinding",
            ctx.caches.role_bindings,
            ROLE_BINDINGS,
            runner_rolebinding_name(name),
            lambda: build.build_runner_role_binding(session),
        ),
    ]
    parent = build.parent_session_id(session)
    if runtime.storage != PERSISTENCE_PVC:
        workspace_message = (
            f"no workspace PVC: runtime {runtime.id} keeps its state with persistence {runtime.storage}"
        )
    elif parent:
        # Nothing is created for a continuation whose parent's workspace is gone.
        early, workspace_message = _parent_workspace(ctx, session, parent)
        if early is not None:
            return early
    if runtime.storage == PERSISTENCE_PVC and not parent:
        claim = build.workspace_claim_name(session)
        workspace_message = f"workspace {claim}"
        children.insert(
            0,
            Child(
                "PersistentVolumeClaim",
                ctx.caches.pvcs,
                PVCS,
                claim,
                lambda: build.build_workspace_pvc(session, ctx.config),
            ),
        )
    # The backend trusts a runner's token only for the ServiceAccount this annotation names: set
    # with the ServiceAccount's create, one round trip fewer for a new session than after its Job.
    naming_sa = (meta.get("annotations") or {}).get(ANNOTATION_RUNNER_SA) != runner_sa_name(name)
    name_sa = functools.partial(patch_annotations, ctx, session, {ANNOTATION_RUNNER_SA: runner_sa_name(name)})
    stop_here = ensure_children(ctx, session, children, alongside=[name_sa] if naming_sa else [])
    if stop_here is not None:
        return stop_here
    # What the status write starts from: the session as that patch cached it, so the write
    # carries the current resourceVersion instead of earning a conflict and a re-read.
    latest = (ctx.caches.sessions.get(namespace, name) if naming_sa else None) or session

    service = Child(
        "Service",
        ctx.caches.services,
        SERVICES,
        session_service_name(name),
        lambda: build.build_session_service(session, ctx.config),
    )
    temp_pod = ctx.caches.pods.get(namespace, temp_content_pod_name(name))
    job_name = runner_job_name(name)
    job = ctx.caches.jobs.get(namespace, job_name)
    previous = conditions.get(c.JOB_CREATED)
    job_state: tuple[str, str, str]
    created_job = False
    token: token_secrets.TokenState | None = None
    resolved: runner_inputs.Resolved | None = None
    model: ModelGate | None = None
    result = Result.done()
    if job is not None and owned_by(job, uid) and _previous_run(session, job, previous):
        # A Job kept by --job-ttl-after-finished belongs to the run before a restart: adopting it
        # would end the new run at once. It goes, and the new run gets a Job of its own.
        if not (job.get("metadata") or {}).get("deletionTimestamp"):
            ctx.kube.delete_ignore_missing(JOBS, namespace, job_name, propagation="Background")
        return Result.after(1.0)
    if job is not None:
        stop_here = stop_on_conflict(
            ctx,
            session,
            "Job",
            job_name,
            Ensured.EXISTS
            if owned_by(job, uid)
            else Ensured.WAITING
            if (job.get("metadata") or {}).get("deletionTimestamp")
            else Ensured.CONFLICT,
        )
        if stop_here is not None:
            return stop_here
        ctx.expectations.observed("Job", namespace, job_name)
        job_state = (
            c.TRUE,
            previous.reason if previous and previous.is_true else "Created",
            previous.message if previous and previous.is_true else f"runner Job {job_name} exists",
        )
    elif temp_pod is not None:
        job_state = (
            c.FALSE,
            "WaitingForTempContentPod",
            f"waiting for the temporary content pod {temp_content_pod_name(name)} to be deleted; "
            "it mounts the same workspace",
        )
    elif ctx.expectations.pending("Job", namespace, job_name):
        return Result.after(1.0)
    elif (resolved := runner_inputs.resolve(ctx, session, runtime)).blocked is not None:
        return _blocked(ctx, session, resolved.blocked)
    elif not (model := check_model(ctx, session)).ok:
        job_state = (c.FALSE, WAITING_FOR_MODEL, model.resolution.message)
        result = model.retry
    elif not (token := token_secrets.ensure_for_runner(ctx, session)).ready:
        job_state = (
            c.FALSE,
            "WaitingForSecrets",
            f"waiting for the runner token Secret: {token.reason}: {token.message}",
        )
        result = token.retry
    else:
        phase = str((session.get("status") or {}).get("phase") or "")
        if previous is not None and previous.is_true and phase == c.CREATING:
            if previous.reason == JOB_RECREATED:
                message = f"the runner Job {job_name} disappeared again after being recreated once"
                ctx.write_status(
                    session, LOOP, lambda d: d.set_condition(c.JOB_CREATED, c.FALSE, c.JOB_LOST, message)
                )
                ctx.recorder.record(session, WARNING, c.JOB_LOST, message)
                return Result.done()
            reason, message = (
                JOB_RECREATED,
                f"the runner Job {job_name} was missing and has been recreated once",
            )
            ctx.recorder.record(session, WARNING, "RunnerJobRecreated", message)
        else:
            reason, message = "Created", f"runner Job {job_name} created"
        assert resolved is not None and resolved.inputs is not None
        manifest, warnings = build_runner_job(session, ctx.config, is_resume(session), resolved.inputs)
        manifest = model.apply(manifest)
        manifest["metadata"].setdefault("annotations", {})[ANNOTATION_RUN] = run_number(session)
        # The Service is created with the Job; the check below then finds it.
        job_and_service: list[Callable[[], Any]] = [
            functools.partial(create_child, ctx, JOBS, manifest, uid),
            functools.partial(ensure_children, ctx, session, [service]),
        ]
        state: Ensured = ctx.parallel(job_and_service)[0]
        stop_here = stop_on_conflict(ctx, session, "Job", job_name, state)
        if stop_here is not None:
            return stop_here
        created_job = state is Ensured.CREATED
        job_state = (c.TRUE, reason, message)
        for warning in warnings:
            ctx.recorder.record(session, WARNING, "ProtectedEnvIgnored", warning)
    if job_state[0] == c.TRUE:
        stop_here = ensure_children(ctx, session, [service])
        if stop_here is not None:
            return stop_here

    built_from = int(meta.get("generation") or 0)
    told = started_status(session, ctx.config, c.now_rfc3339()) if created_job else {}

    def describe(draft: StatusDraft) -> None:
        if not draft.get("startTime"):
            draft.set("startTime", c.now_rfc3339())
        if created_job:
            # The runner gets this generation's spec as its env: applied, as far as a Job can say.
            draft.set_reconciled(c.TRUE, c.SPEC_APPLIED, "the spec is valid and applied", built_from)
            for field, value in told.items():
                draft.set(field, value)
        elif job_state[0] == c.TRUE and draft.get("observedGeneration") != draft.generation:
            draft.set_reconciled(
                c.FALSE,
                WAITING_FOR_RUNNER,
                f"generation {draft.generation} is applied to the runner once it runs",
            )
        else:
            draft.set_reconciled(c.TRUE, c.SPEC_APPLIED, "the spec is valid and applied")
        draft.set_condition(c.PVC_READY, c.TRUE, "Ready", workspace_message)
        if token is not None:
            draft.set_condition(
                c.SECRETS_READY, c.TRUE if token.ready else c.FALSE, token.reason, token.message
            )
        if resolved is not None and runtime.storage != PERSISTENCE_PVC and resolved.s3_message:
            draft.set_condition(
                c.S3_AVAILABLE,
                c.TRUE if resolved.s3_ok else c.FALSE,
                "Configured" if resolved.s3_ok else runner_inputs.S3_NOT_CONFIGURED,
                resolved.s3_message,
            )
        draft.set_condition(c.JOB_CREATED, *job_state)
        if model is not None:
            model.describe(draft, job_state[0] == c.TRUE)

    ctx.write_status(latest, LOOP, describe)
    if created_job and (meta.get("annotations") or {}).get(ANNOTATION_FORCE_EXECUTE_PROMPT):
        # The request is consumed by this run. From the session the status write just cached:
        # the stale one's resourceVersion would earn a conflict, a re-read and a retry.
        written = ctx.caches.sessions.get(namespace, name)
        patch_annotations(
            ctx, written if written is not None else latest, {ANNOTATION_FORCE_EXECUTE_PROMPT: None}
        )
    return result
