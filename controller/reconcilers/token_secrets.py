"""The token secrets loop: the runner's credentials, issued and refreshed before they expire.

For every session that needs a runner it owns Secret `ambient-runner-token-<name>`: `k8s-token`
from a TokenRequest for the runner ServiceAccount, `agui-token` random and stable across refreshes
(rotated only when the session restarts). A refresh is scheduled with RequeueAfter at the exact
time it falls due, so nothing scans all sessions. Every write is guarded by resourceVersion, and the
refresh decision is re-checked against a fresh read before a TokenRequest is made, so two
operators racing on one Secret make at most one TokenRequest per refresh and lose no update.
Token values never leave this module except inside the Secret itself.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import conditions as c
from controller.api_error import ApiError
from controller.events import WARNING
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_TOKEN_REFRESHED_AT,
    TOKEN_KEY_AGUI,
    TOKEN_KEY_K8S,
    runner_sa_name,
    token_secret_name,
)
from controller.reconcile import Key, Result
from controller.reconcilers.children import build_token_secret
from controller.reconcilers.context import Context, owned_by
from controller.reconcilers.token_budget import RefreshBudget, jittered_ttl
from controller.resources import SECRETS
from controller.retry import retry_on_conflict
from controller.status import StatusDraft

log = logging.getLogger("controller.reconcilers.token_secrets")

LOOP = "token-secrets"
ANNOTATION_RUN = "ambient-code.io/run-number"
ANNOTATION_REFRESH_CLAIM = "ambient-code.io/token-refresh-claim"
CLAIM_TIMEOUT = 30.0
IDENTITY = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
CLAIM_RETRY = 2.0
TOKEN_ISSUED = "TokenIssued"
TOKEN_REQUEST_FAILED = "TokenRequestFailed"


def needs_runner(session: Mapping[str, Any]) -> bool:
    status = session.get("status") or {}
    phase = str(status.get("phase") or "")
    desired = ((session.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_DESIRED_PHASE)
    return phase in ("", c.PENDING, c.CREATING, c.RUNNING) and desired != c.STOPPED


def refresh_due_in(refreshed_at: str | None, ttl: float, now: datetime.datetime) -> float:
    """Seconds until the token must be refreshed; <= 0 means now."""
    when = c.parse_time(refreshed_at)
    if when is None:
        return 0.0
    return ttl - (now - when).total_seconds()


def run_number(session: Mapping[str, Any]) -> str:
    """Which run of the session this is: the agui-token belongs to one run and rotates on restart."""
    count = (session.get("status") or {}).get("restartCount")
    return str(count if isinstance(count, int) else 0)


def _set_secrets_ready(
    ctx: Context, session: Mapping[str, Any], status: str, reason: str, message: str
) -> None:
    def describe(draft: StatusDraft) -> None:
        draft.set_condition(c.SECRETS_READY, status, reason, message)

    ctx.write_status(session, LOOP, describe)


def current_refresh(
    cached: Mapping[str, Any] | None, run: str, ttl: float, now: datetime.datetime
) -> str | None:
    """The cached Secret's refreshed-at time while its token is fresh and its agui-token this run's."""
    annotations = ((cached or {}).get("metadata") or {}).get("annotations") or {}
    refreshed_at = annotations.get(ANNOTATION_TOKEN_REFRESHED_AT)
    if (
        cached is None
        or annotations.get(ANNOTATION_RUN) != run
        or refresh_due_in(refreshed_at, ttl, now) <= 0
    ):
        return None
    return str(refreshed_at)


def session_ttl(ctx: Context, namespace: str, name: str) -> float:
    """The session's refresh interval: the TTL less its own share of --token-refresh-jitter."""
    return jittered_ttl(ctx.config.token_ttl, ctx.config.token_refresh_jitter, f"{namespace}/{name}")


def _failure_message(name: str, exc: ApiError) -> str:
    account = runner_sa_name(name)
    return f"could not issue the runner token for ServiceAccount {account}: {exc.status} {exc.reason}"


@dataclass(frozen=True)
class TokenState:
    """The runner token as the sessions loop found or made it, for its SecretsReady condition."""

    ready: bool
    reason: str
    message: str
    retry: Result = field(default_factory=Result.done)


def ensure_for_runner(ctx: Context, session: Mapping[str, Any]) -> TokenState:
    """Issues the runner token just before the sessions loop creates the runner Job.

    The Secret is written when it is missing, due, or holds an earlier run's agui-token; a failure
    is a Warning Event and a not-ready state that the sessions loop records and retries.
    """
    meta = session["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    run = run_number(session)
    now = datetime.datetime.now(datetime.UTC)
    cached = ctx.caches.secrets.get(namespace, token_secret_name(name))
    refreshed_at = current_refresh(cached, run, session_ttl(ctx, namespace, name), now)
    if refreshed_at is None:
        try:
            refreshed_at = issue(ctx, session, run, known_missing=cached is None)
        except RefreshInProgress as exc:
            return TokenState(False, "TokenRefreshInProgress", str(exc), Result.after(CLAIM_RETRY))
        except ApiError as exc:
            message = _failure_message(name, exc)
            ctx.recorder.record(session, WARNING, TOKEN_REQUEST_FAILED, message)
            return TokenState(False, TOKEN_REQUEST_FAILED, message, Result(requeue=True))
    return TokenState(True, TOKEN_ISSUED, f"runner token issued at {refreshed_at}")


def reconcile(ctx: Context, key: Key, budget: RefreshBudget | None = None) -> Result:
    """Keeps a provisioned runner's token fresh; the first token is the sessions loop's to issue.

    A due refresh waits for its slot of `budget` (the loop's shared rate bound) as a RequeueAfter.
    """
    namespace, name = key
    session = ctx.caches.sessions.get(namespace, name)
    if session is None or not needs_runner(session):
        return Result.done()
    job_created = c.parse_conditions(session.get("status")).get(c.JOB_CREATED)
    if job_created is None or not job_created.is_true:
        return Result.done()  # provisioning; the status write that records the Job wakes us
    meta = session["metadata"]
    uid = str(meta.get("uid", ""))
    account = ctx.caches.service_accounts.get(namespace, runner_sa_name(name))
    if account is None or not owned_by(account, uid):
        return Result.done()  # the sessions loop creates it; its event wakes us
    run = run_number(session)
    now = datetime.datetime.now(datetime.UTC)
    ttl = session_ttl(ctx, namespace, name)
    cached = ctx.caches.secrets.get(namespace, token_secret_name(name))
    refreshed_at = current_refresh(cached, run, ttl, now)
    if refreshed_at is not None:
        _mark_ready(ctx, session, refreshed_at)
        return Result.after(refresh_due_in(refreshed_at, ttl, now))
    wait = budget.admit(key) if budget is not None else 0.0
    if wait > 0:
        return Result.after(wait)
    try:
        refreshed_at = issue(ctx, session, run, known_missing=cached is None)
    except RefreshInProgress:
        return Result.after(CLAIM_RETRY)
    except ApiError as exc:
        message = _failure_message(name, exc)
        _set_secrets_ready(ctx, session, c.FALSE, TOKEN_REQUEST_FAILED, message)
        ctx.recorder.record(session, WARNING, TOKEN_REQUEST_FAILED, message)
        raise
    _mark_ready(ctx, session, refreshed_at)
    return Result.after(max(refresh_due_in(refreshed_at, ttl, now), 1.0))


def _mark_ready(ctx: Context, session: Mapping[str, Any], refreshed_at: str) -> None:
    current = c.parse_conditions(session.get("status")).get(c.SECRETS_READY)
    if current is not None and current.is_true and current.reason == TOKEN_ISSUED:
        return
    _set_secrets_ready(ctx, session, c.TRUE, TOKEN_ISSUED, f"runner token issued at {refreshed_at}")


def _new_token(ctx: Context, namespace: str, name: str) -> str:
    audiences = [ctx.config.token_audience] if ctx.config.token_audience else []
    token, _ = ctx.kube.create_token(
        namespace, runner_sa_name(name), audiences=audiences, expiration_seconds=ctx.config.token_expiration
    )
    return token


def issue(ctx: Context, session: Mapping[str, Any], run: str, known_missing: bool = False) -> str:
    """Creates or refreshes the Secret; returns the refreshed-at time that is now stored.

    When the cache shows no Secret the first attempt creates it without a read: a concurrent
    creator makes that fail with AlreadyExists, which is retried as a conflict with a fresh read.
    """
    meta = session["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    secret_name = token_secret_name(name)

    def attempt(number: int) -> str:
        now = datetime.datetime.now(datetime.UTC)
        current: dict[str, Any] | None = None
        if not (known_missing and number == 1):
            current = ctx.kube.get_or_none(SECRETS, namespace, secret_name)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        if current is None:
            manifest = build_token_secret(
                session, _new_token(ctx, namespace, name), secrets.token_urlsafe(32), stamp
            )
            manifest["metadata"].setdefault("annotations", {})[ANNOTATION_RUN] = run
            try:
                ctx.kube.create(SECRETS, namespace, manifest)
            except ApiError as exc:
                if exc.already_exists:
                    raise ApiError(409, "Conflict", "created concurrently") from exc
                raise
            return stamp
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        rotate_agui = annotations.get(ANNOTATION_RUN) != run
        ttl = session_ttl(ctx, namespace, name)
        due_in = refresh_due_in(annotations.get(ANNOTATION_TOKEN_REFRESHED_AT), ttl, now)
        if due_in > 0 and not rotate_agui:
            return str(annotations.get(ANNOTATION_TOKEN_REFRESHED_AT))  # someone else refreshed it already
        if claimed_by_other(annotations.get(ANNOTATION_REFRESH_CLAIM), now):
            raise RefreshInProgress(f"another operator is refreshing Secret {secret_name}")
        # Claim the refresh before asking for a token: a racing refresher now fails this write with
        # 409, re-reads, sees the claim (then the new token) and makes no TokenRequest of its own.
        claimed = ctx.kube.patch(
            SECRETS,
            namespace,
            secret_name,
            {
                "metadata": {
                    "resourceVersion": current["metadata"]["resourceVersion"],
                    "annotations": {ANNOTATION_REFRESH_CLAIM: f"{IDENTITY} {stamp}"},
                }
            },
        )
        data: dict[str, Any] = {TOKEN_KEY_K8S: _b64(_new_token(ctx, namespace, name))}
        if rotate_agui or not (current.get("data") or {}).get(TOKEN_KEY_AGUI):
            data[TOKEN_KEY_AGUI] = _b64(secrets.token_urlsafe(32))
        patch = {
            "metadata": {
                "resourceVersion": claimed["metadata"]["resourceVersion"],
                "annotations": {
                    ANNOTATION_TOKEN_REFRESHED_AT: stamp,
                    ANNOTATION_RUN: run,
                    ANNOTATION_REFRESH_CLAIM: None,
                },
            },
            "data": data,
        }
        ctx.kube.patch(SECRETS, namespace, secret_name, patch)
        return stamp

    return retry_on_conflict(attempt)


class RefreshInProgress(Exception):
    """Another refresher holds a fresh claim on this Secret; look again shortly."""


def claimed_by_other(claim: str | None, now: datetime.datetime) -> bool:
    """True while another refresher's claim is younger than CLAIM_TIMEOUT (a crashed one expires)."""
    if not claim:
        return False
    holder, _, when = claim.partition(" ")
    claimed_at = c.parse_time(when)
    if holder == IDENTITY or claimed_at is None:
        return False
    return (now - claimed_at).total_seconds() < CLAIM_TIMEOUT


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
