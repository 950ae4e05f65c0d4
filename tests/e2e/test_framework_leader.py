"""Leader election between two real operator processes sharing one Lease in the test namespace."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from controller.kube import Kube
from controller.resources import LEASES
from tests.e2e.conftest import OperatorFactory, create_session, phase_is, wait_session
from tests.e2e.helpers import wait_for
from tests.e2e.operator import OperatorProcess

LEASE_NAME = "agentic-operator.ambient-code.io"
LEASE_DURATION = 15.0
RETRY_PERIOD = 2.0
# A standby counts a lease as expired once it has seen no renewal for LEASE_DURATION on its own
# clock, dating each renewal it sees one RETRY_PERIOD early (it happened at most that long before
# the standby looked). It then notices the expiry on one of its attempts, every RETRY_PERIOD, so it
# takes over at most LEASE_DURATION + RETRY_PERIOD after the leader's death: the 17 s promised.
TAKEOVER_BOUND = LEASE_DURATION + RETRY_PERIOD
# Never sooner than LEASE_DURATION - RETRY_PERIOD after the last renewal, itself at most one
# RETRY_PERIOD before the death; half a second covers request latency.
TAKEOVER_FLOOR = LEASE_DURATION - 2 * RETRY_PERIOD - 0.5


@dataclass(frozen=True)
class Sample:
    at: float
    leader: tuple[bool, ...]
    reconciles: tuple[float, ...]


class LeaderSampler(threading.Thread):
    """Reads every operator's leader gauge and reconcile count every 0.2 s."""

    def __init__(self, operators: list[OperatorProcess]):
        super().__init__(name="leader-sampler", daemon=True)
        self.operators = operators
        self.samples: list[Sample] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.2):
            leader: list[bool] = []
            reconciles: list[float] = []
            for op in self.operators:
                status, total = read(op)
                leader.append(status)
                reconciles.append(total)
            self.samples.append(Sample(time.monotonic(), tuple(leader), tuple(reconciles)))

    def finish(self) -> list[Sample]:
        self.halt.set()
        self.join(10)
        both = [s for s in self.samples if sum(s.leader) > 1]
        assert not both, f"two leaders at once in {len(both)} samples, first at {both[0]}"
        states = {s.leader for s in self.samples}
        assert {(True, False), (False, True)} <= states, (
            f"the lead never moved between the operators: {states}"
        )
        return self.samples


def read(op: OperatorProcess) -> tuple[bool, float]:
    """(is leader, total reconciles); a dead or unreachable process is no leader."""
    if op.process is None or op.process.poll() is not None:
        return False, 0.0
    try:
        found = op.metrics()
    except AssertionError:
        return False, 0.0
    status = sum(v for _, v in found.get("leader_election_master_status", []))
    total = sum(v for _, v in found.get("controller_runtime_reconcile_total", []))
    return status == 1, total


def is_leader(op: OperatorProcess) -> bool:
    return read(op)[0]


def reconciles(op: OperatorProcess) -> float:
    return op.metric("controller_runtime_reconcile_total")


def holder(kube: Kube, namespace: str) -> str:
    return str((kube.get(LEASES, namespace, LEASE_NAME).get("spec") or {}).get("holderIdentity") or "")


def holds_lease(kube: Kube, namespace: str, op: OperatorProcess) -> bool:
    assert op.process is not None
    return f"_{op.process.pid}_" in holder(kube, namespace)


def start_pair(start_operator: OperatorFactory, namespace: str) -> tuple[OperatorProcess, OperatorProcess]:
    """Starts two electing operators; returns (leader, standby) once exactly one leads."""
    args = ["--leader-elect", "--leader-election-namespace", namespace]
    first = start_operator([namespace], args=args, name="first")
    second = start_operator([namespace], args=args, name="second")
    wait_for(lambda: is_leader(first) or is_leader(second), timeout=30, message="a leader is elected")
    leader, standby = (first, second) if is_leader(first) else (second, first)
    assert not is_leader(standby)
    return leader, standby


def test_one_leader_and_fast_failover_after_sigkill(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    leader, standby = start_pair(start_operator, namespace)
    sampler = LeaderSampler([leader, standby])
    sampler.start()
    try:
        for i in range(3):
            create_session(kube, f"before-{i}", namespace)
        for i in range(3):
            wait_session(kube, namespace, f"before-{i}", phase_is("Running"), timeout=90, what="Running")
        assert reconciles(leader) > 0
        assert reconciles(standby) == 0, "the standby reconciled while another replica led"
        assert holds_lease(kube, namespace, leader), holder(kube, namespace)

        killed_at = time.monotonic()
        leader.kill()
        wait_for(lambda: is_leader(standby), timeout=40, interval=0.1, message="the standby takes over")
        takeover = time.monotonic() - killed_at
        assert TAKEOVER_FLOOR <= takeover <= TAKEOVER_BOUND, (
            f"took over {takeover:.1f}s after the leader died; expected "
            f"{TAKEOVER_FLOOR:.1f}s..{TAKEOVER_BOUND:.1f}s"
        )
        assert holds_lease(kube, namespace, standby), holder(kube, namespace)

        create_session(kube, "after", namespace)
        wait_session(kube, namespace, "after", phase_is("Running"), timeout=90, what="Running after failover")
        assert reconciles(standby) > 0
    finally:
        samples = sampler.finish()
    standby_before = [s.reconciles[1] for s in samples if s.at < killed_at]
    assert standby_before and max(standby_before) == 0, "the standby reconciled before it led"


def test_sigterm_releases_the_lease_for_a_quick_handover(
    kube: Kube, namespace: str, start_operator: OperatorFactory
) -> None:
    leader, standby = start_pair(start_operator, namespace)
    sampler = LeaderSampler([leader, standby])
    sampler.start()
    try:
        create_session(kube, "handover", namespace)
        wait_session(kube, namespace, "handover", phase_is("Running"), timeout=90, what="Running")
        assert reconciles(standby) == 0

        exit_code: list[int] = []
        signalled_at = time.monotonic()
        stopper = threading.Thread(target=lambda: exit_code.append(leader.terminate(timeout=45)), daemon=True)
        stopper.start()
        wait_for(lambda: is_leader(standby), timeout=30, interval=0.1, message="the standby takes over")
        handover = time.monotonic() - signalled_at
        stopper.join(50)
        assert exit_code == [0], f"the old leader exited with {exit_code}; log:\n{leader.log_tail()}"
        assert handover < 6.0, f"handover took {handover:.1f}s; the lease was not released on SIGTERM"
        assert "released lease" in leader.log_text()
        assert holds_lease(kube, namespace, standby), holder(kube, namespace)

        create_session(kube, "next", namespace)
        wait_session(kube, namespace, "next", phase_is("Running"), timeout=90, what="Running after handover")
    finally:
        sampler.finish()
