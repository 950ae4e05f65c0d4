"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules and numbers.

A lease held by someone else counts as expired only when *we* have not seen its renewTime change
for leaseDuration on our own clock, so clock skew between replicas cannot steal a live lease. A
change we see was made at most one retry period before we looked, so it is dated that much earlier
(when that stays safe: a leader that cannot renew gives up after renewDeadline, before anyone may
take over); this bounds takeover after a crash at leaseDuration + retryPeriod instead of + 2x. The
leader that cannot renew within renewDeadline stops at once; a leader shutting down releases the
lease so the next one takes over without waiting for expiry.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller import metrics
from controller.api_error import ApiError
from controller.kube import Kube
from controller.resources import LEASES

log = logging.getLogger("controller.leader")


@dataclass(frozen=True)
class LeaderElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def validate(self) -> None:
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline <= 1.2 * self.retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*1.2")
        if self.retry_period <= 0:
            raise ValueError("retryPeriod must be positive")


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs the acquire/renew loop on its own thread and reports transitions through callbacks."""

    def __init__(
        self,
        kube: Kube,
        config: LeaderElectionConfig,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
    ):
        config.validate()
        self.kube = kube
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._observed_record: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._thread: threading.Thread | None = None
        self._observation_lag = max(
            0.0, min(config.retry_period, config.lease_duration - config.renew_deadline - config.retry_period)
        )
        self._gauge = metrics.leader_election_master_status.labels(config.name)
        self._gauge.set(0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.config.retry_period * 2 + 5)
        if release and self.leading.is_set():
            self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._try_acquire_or_renew():
                break
            self._stop.wait(self.config.retry_period)
        if self._stop.is_set():
            return
        self.leading.set()
        self._gauge.set(1)
        log.info(
            "became leader of lease %s/%s as %s",
            self.config.namespace,
            self.config.name,
            self.config.identity,
        )
        self.on_started_leading()
        last_renew = time.monotonic()
        while not self._stop.wait(self.config.retry_period):
            if self._try_acquire_or_renew():
                last_renew = time.monotonic()
            elif time.monotonic() - last_renew > self.config.renew_deadline:
                log.error(
                    "lost lease %s/%s: could not renew within %.0fs",
                    self.config.namespace,
                    self.config.name,
                    self.config.renew_deadline,
                )
                self.leading.clear()
                self._gauge.set(0)
                self.on_stopped_leading()
                return

    def _lease_body(self, existing: dict[str, Any] | None, transitions: int) -> dict[str, Any]:
        now = _now_micro()
        spec = {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "renewTime": now,
            "acquireTime": now,
            "leaseTransitions": transitions,
        }
        if (
            existing is not None
            and (existing.get("spec") or {}).get("holderIdentity") == self.config.identity
        ):
            spec["acquireTime"] = existing["spec"].get("acquireTime") or now
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.config.namespace},
            "spec": spec,
        }
        if existing is not None:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return body

    def _try_acquire_or_renew(self) -> bool:
        ns, name = self.config.namespace, self.config.name
        try:
            lease = self.kube.get(LEASES, ns, name)
        except ApiError as exc:
            if not exc.not_found:
                log.warning("reading lease %s/%s failed: %s", ns, name, exc)
                return False
            try:
                self.kube.create(LEASES, ns, self._lease_body(None, 0))
                self._observed_at = time.monotonic()
                return True
            except ApiError as create_error:
                log.info("creating lease %s/%s failed: %s", ns, name, create_error)
                return False
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = time.monotonic() - self._observation_lag
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        held_by_other = holder not in ("", self.config.identity)
        if held_by_other and time.monotonic() < self._observed_at + duration:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.config.identity:
            transitions += 1
        try:
            self.kube.replace(LEASES, ns, name, self._lease_body(lease, transitions))
        except ApiError as exc:
            log.info("updating lease %s/%s failed: %s", ns, name, exc)
            return False
        self._observed_at = time.monotonic()
        return True

    def _release(self) -> None:
        ns, name = self.config.namespace, self.config.name
        try:
            lease = self.kube.get(LEASES, ns, name)
            if (lease.get("spec") or {}).get("holderIdentity") != self.config.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            lease["spec"]["renewTime"] = _now_micro()
            self.kube.replace(LEASES, ns, name, lease)
            log.info("released lease %s/%s", ns, name)
        except ApiError as exc:
            log.warning("releasing lease %s/%s failed: %s", ns, name, exc)
        finally:
            self.leading.clear()
            self._gauge.set(0)
