"""`agentic-operator session-trigger`: what a scheduled session's CronJob runs, once, then exits.

The platform's backend creates one CronJob per scheduled session; its pod runs
`./operator session-trigger` in the operator image with the environment below, as the
ServiceAccount `ambient-session-trigger` the projects loop provides. The contract is the
platform's operator's, kept exactly:

  SESSION_TEMPLATE        the session spec, JSON (required)
  PROJECT_NAMESPACE       where the session lives (required)
  SCHEDULED_SESSION_NAME  the CronJob's name; labels every session it makes (required)
  REUSE_LAST_SESSION      "true" (any case, trimmed): reuse the newest session of this schedule
  BACKEND_NAMESPACE       where backend-service runs (default ambient-code)

With reuse, a Running last session gets the template's prompt as a follow-up through the
backend's AG-UI endpoint; a Stopped or Completed one is started again with that prompt
(desired-phase Running, force-execute-prompt); any other phase, or no session, gets a new one.
One fix over the platform: the template's runnerType survives the CRD's pruning, carried as
spec.environmentVariables.RUNNER_TYPE.

Two more variables, for running outside a pod (tests, a person at a shell): BACKEND_API_URL
replaces the backend's base URL (default http://backend-service.<BACKEND_NAMESPACE>.svc.cluster.local:8080/api),
and SERVICE_ACCOUNT_TOKEN_FILE the token sent to it. KUBECONFIG is honoured; in a pod the
in-cluster config is used.

Exit 0 when the schedule's work is done, 1 with one line on stderr saying why it is not.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from controller.api_error import ApiError
from controller.kube import Kube, load_api_client
from controller.names import (
    ANNOTATION_DESIRED_PHASE,
    ANNOTATION_FORCE_EXECUTE_PROMPT,
    ANNOTATION_START_REQUESTED_AT,
    API_VERSION,
    KIND,
)
from controller.resources import SESSIONS
from controller.retry import patch_with_retry

log = logging.getLogger("controller.trigger")

LABEL_SCHEDULED_SESSION_NAME = "ambient-code.io/scheduled-session-name"
LABEL_SCHEDULED_RUN = "ambient-code.io/scheduled-run"
DEFAULT_BACKEND_NAMESPACE = "ambient-code"
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
REQUIRED = ("SESSION_TEMPLATE", "PROJECT_NAMESPACE", "SCHEDULED_SESSION_NAME")
BACKEND_TIMEOUT = 30.0
PREFIX_LIMIT = 40


class TriggerError(Exception):
    """A reason the schedule's work was not done: printed as the one line of a failed run."""


def sanitize_name(text: str) -> str:
    """The platform's name prefix: ASCII letters lowercased, digits kept, any other run -> one '-'."""
    out: list[str] = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
        elif "A" <= ch <= "Z":
            out.append(ch.lower())
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out)[:PREFIX_LIMIT].rstrip("-") or "run"


def rfc3339_local(now: datetime.datetime) -> str:
    """Go's time.RFC3339 of local time: seconds, 'Z' for UTC, else the offset."""
    text = now.astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def new_session(
    template: Mapping[str, Any], namespace: str, schedule: str, now: datetime.datetime
) -> dict[str, Any]:
    """The session a scheduled run creates: the template as spec, the platform's name and labels."""
    spec = dict(template)
    prefix = sanitize_name(schedule)
    display = spec.get("displayName")
    if isinstance(display, str) and display:
        prefix = sanitize_name(display)
        utc = now.astimezone(datetime.UTC)
        spec["displayName"] = f"{display} ({utc:%b} {utc.day}, {utc:%Y - %H:%M:%S})"
    runner_type = spec.get("runnerType")
    if isinstance(runner_type, str) and runner_type:
        env = spec.get("environmentVariables")
        env = dict(env) if isinstance(env, Mapping) else {}
        env.setdefault("RUNNER_TYPE", runner_type)
        spec["environmentVariables"] = env
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": f"{prefix}-{int(now.timestamp())}",
            "namespace": namespace,
            "labels": {LABEL_SCHEDULED_SESSION_NAME: schedule, LABEL_SCHEDULED_RUN: "true"},
        },
        "spec": spec,
    }


def follow_up_body(session_name: str, prompt: str, now: float) -> dict[str, Any]:
    return {
        "threadId": session_name,
        "runId": f"scheduled-{int(now)}",
        "messages": [{"id": f"scheduled-msg-{int(now * 1e9)}", "role": "user", "content": prompt}],
    }


def _newest(sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(
        sessions, key=lambda s: str((s.get("metadata") or {}).get("creationTimestamp") or ""), default=None
    )


class Trigger:
    def __init__(self, environ: Mapping[str, str], connect: Callable[[], Kube]):
        """Checks the environment first: a misconfigured CronJob fails before any request."""
        self.environ = environ
        missing = [name for name in REQUIRED if not environ.get(name)]
        if missing:
            raise TriggerError(f"required environment variables not set: {', '.join(missing)}")
        try:
            template = json.loads(environ["SESSION_TEMPLATE"])
        except ValueError as exc:
            raise TriggerError(f"SESSION_TEMPLATE is not valid JSON: {exc}") from None
        if not isinstance(template, dict):
            raise TriggerError("SESSION_TEMPLATE must be a JSON object")
        self.template: dict[str, Any] = template
        self.namespace = environ["PROJECT_NAMESPACE"]
        self.schedule = environ["SCHEDULED_SESSION_NAME"]
        self.reuse = environ.get("REUSE_LAST_SESSION", "").strip().lower() == "true"
        prompt = template.get("initialPrompt")
        self.prompt = prompt if isinstance(prompt, str) else ""
        self.kube = connect()

    def run(self) -> str:
        """Does the schedule's work; returns what was done, for the log."""
        if self.reuse:
            done = self.reuse_last()
            if done:
                return done
        return self.create()

    def reuse_last(self) -> str:
        listing = self.kube.list(
            SESSIONS, self.namespace, label_selector=f"{LABEL_SCHEDULED_SESSION_NAME}={self.schedule}"
        )
        latest = _newest(list(listing.get("items") or []))
        if latest is None:
            log.info("no previous session of schedule %s: creating one", self.schedule)
            return ""
        name = str(latest["metadata"]["name"])
        phase = str((latest.get("status") or {}).get("phase") or "")
        if phase == "Running":
            if not self.prompt:
                return f"session {name} is running and the template has no prompt: nothing to send"
            self.send_follow_up(name)
            return f"sent the prompt to running session {name}"
        if phase in ("Stopped", "Completed"):
            self.restart(name)
            return f"restarted {phase.lower()} session {name}"
        log.info("last session %s is %s, not reusable: creating one", name, phase or "without a phase")
        return ""

    def backend_url(self, session_name: str) -> str:
        base = self.environ.get("BACKEND_API_URL") or (
            "http://backend-service."
            f"{self.environ.get('BACKEND_NAMESPACE') or DEFAULT_BACKEND_NAMESPACE}"
            ".svc.cluster.local:8080/api"
        )
        return f"{base.rstrip('/')}/projects/{self.namespace}/agentic-sessions/{session_name}/agui/run"

    def send_follow_up(self, session_name: str) -> None:
        path = self.environ.get("SERVICE_ACCOUNT_TOKEN_FILE") or TOKEN_FILE
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise TriggerError(f"cannot read the service account token {path}: {exc.strerror}") from None
        url = self.backend_url(session_name)
        request = urllib.request.Request(
            url,
            data=json.dumps(follow_up_body(session_name, self.prompt, time.time())).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=BACKEND_TIMEOUT) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise TriggerError(
                f"the backend answered {exc.code} to the follow-up for session {session_name}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TriggerError(f"cannot reach the backend at {url}: {reason}") from None
        if status >= 400:
            raise TriggerError(f"the backend answered {status} to the follow-up for session {session_name}")

    def restart(self, session_name: str) -> None:
        def mutate(current: Mapping[str, Any]) -> dict[str, Any]:
            annotations: dict[str, str] = {
                ANNOTATION_DESIRED_PHASE: "Running",
                ANNOTATION_START_REQUESTED_AT: rfc3339_local(datetime.datetime.now()),
            }
            patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
            if self.prompt:
                annotations[ANNOTATION_FORCE_EXECUTE_PROMPT] = "true"
                patch["spec"] = {"initialPrompt": self.prompt}
            return patch

        if patch_with_retry(self.kube, SESSIONS, self.namespace, session_name, mutate) is None:
            raise TriggerError(f"session {session_name} disappeared before it could be restarted")

    def create(self) -> str:
        manifest = new_session(
            self.template, self.namespace, self.schedule, datetime.datetime.now(datetime.UTC)
        )
        self.kube.create(SESSIONS, self.namespace, manifest)
        return f"created session {manifest['metadata']['name']}"


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="session-trigger: %(message)s", stream=sys.stderr)
    try:
        trigger = Trigger(environ, lambda: Kube(load_api_client(environ.get("KUBECONFIG", ""))))
        done = trigger.run()
    except TriggerError as exc:
        print(f"session-trigger: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(
            f"session-trigger: the API server answered {exc.status} {exc.reason}: {exc.message}"[:500],
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        # A CronJob's log should say in one line why the run failed, not end in a traceback.
        print(f"session-trigger: {type(exc).__name__}: {exc}"[:500], file=sys.stderr)
        return 1
    log.info("%s", done)
    return 0
