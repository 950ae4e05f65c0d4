"""Lifecycle corners a person hits: a start asked for while stopping, a restart over a kept Job."""

from __future__ import annotations

import time

from controller.kube import Kube
from controller.names import ANNOTATION_DESIRED_PHASE, runner_job_name
from controller.resources import JOBS
from tests.e2e.conftest import OperatorFactory, annotate, create_session, phase_is, wait_session
from tests.e2e.helpers import COMPLETE_AFTER

HOLD = "e2e.ambient-code.io/hold"


def test_start_requested_while_stopping_is_honoured_once_stopped(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace])
    create_session(kube, "bounce", namespace)
    wait_session(kube, namespace, "bounce", phase_is("Running"), timeout=30)
    job = runner_job_name("bounce")
    # A finalizer holds the runner Job, so the session stays in Stopping while the start arrives.
    kube.patch(JOBS, namespace, job, {"metadata": {"finalizers": [HOLD]}})
    try:
        annotate(kube, namespace, "bounce", {ANNOTATION_DESIRED_PHASE: "Stopped"})
        wait_session(kube, namespace, "bounce", phase_is("Stopping"), timeout=20)
        annotate(kube, namespace, "bounce", {ANNOTATION_DESIRED_PHASE: "Running"})
        time.sleep(2.0)
        held = wait_session(kube, namespace, "bounce", phase_is("Stopping"), timeout=5)
        assert held["metadata"]["annotations"].get(ANNOTATION_DESIRED_PHASE) == "Running", (
            "the start request was dropped while stopping"
        )
    finally:
        kube.patch(JOBS, namespace, job, {"metadata": {"finalizers": None}})
    restarted = wait_session(
        kube,
        namespace,
        "bounce",
        lambda s: phase_is("Running")(s) and (s["status"].get("restartCount") or 0) >= 1,
        timeout=30,
        what="Running again after Stopped",
    )
    assert not restarted["metadata"].get("annotations", {}).get(ANNOTATION_DESIRED_PHASE)


def test_restart_never_adopts_the_previous_runs_kept_job(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    start_operator([namespace], args=["--job-ttl-after-finished", "300"])
    create_session(kube, "again", namespace, annotations={COMPLETE_AFTER: "1s"})
    wait_session(kube, namespace, "again", phase_is("Completed"), timeout=30)
    old_uid = kube.get(JOBS, namespace, runner_job_name("again"))["metadata"]["uid"]
    # The new run should stay up: no completion annotation this time.
    annotate(kube, namespace, "again", {COMPLETE_AFTER: None, ANNOTATION_DESIRED_PHASE: "Running"})
    wait_session(kube, namespace, "again", phase_is("Running"), timeout=30, what="the new run Running")
    new_uid = kube.get(JOBS, namespace, runner_job_name("again"))["metadata"]["uid"]
    assert new_uid != old_uid
    time.sleep(1.0)
    wait_session(kube, namespace, "again", phase_is("Running"), timeout=2, what="still Running")
