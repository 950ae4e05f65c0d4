"""Workers start on demand up to the loop's concurrency and leave when there is no work."""

from __future__ import annotations

import threading
import time
import uuid

from controller import waits
from controller.loop import Loop
from controller.reconcile import Key, Result
from tests.unit.waiting import wait_until

SOON = 5.0


class Recorder:
    """A reconcile that waits on a "request" until released, and remembers how many ran at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.done: list[Key] = []

    def __call__(self, key: Key) -> Result:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        with waits.waiting():  # as the API client marks a request in flight
            self.release.wait(SOON)
        with self.lock:
            self.running -= 1
            self.done.append(key)
        return Result()


def make_loop(reconcile: Recorder, workers: int, idle: float = 30.0) -> Loop:
    loop = Loop(f"test-{uuid.uuid4().hex[:10]}", reconcile, workers)
    loop.idle_worker_seconds = idle
    return loop


def test_one_worker_waits_while_there_is_nothing_to_do() -> None:
    loop = make_loop(Recorder(), workers=8)
    loop.start()
    try:
        assert loop.worker_count() == 1
    finally:
        loop.halt()


def test_a_burst_starts_workers_up_to_the_concurrency_and_no_more() -> None:
    recorder = Recorder()
    loop = make_loop(recorder, workers=4)
    loop.start()
    try:
        for index in range(20):
            loop.enqueue(("ns", f"s{index}"))
        assert wait_until(lambda: recorder.running == 4)
        assert loop.worker_count() == 4
        recorder.release.set()
        assert wait_until(lambda: len(recorder.done) == 20)
        assert recorder.most == 4
    finally:
        loop.halt()


def test_keys_queued_before_start_get_their_workers_at_start() -> None:
    recorder = Recorder()
    loop = make_loop(recorder, workers=3)
    for index in range(10):
        loop.enqueue(("ns", f"s{index}"))
    loop.start()
    try:
        assert wait_until(lambda: recorder.running == 3)
        recorder.release.set()
        assert wait_until(lambda: len(recorder.done) == 10)
    finally:
        loop.halt()


def test_idle_workers_leave_but_one_stays_and_still_serves() -> None:
    recorder = Recorder()
    recorder.release.set()
    loop = make_loop(recorder, workers=4, idle=0.2)
    loop.start()
    try:
        recorder.release.clear()
        for index in range(8):
            loop.enqueue(("ns", f"s{index}"))
        assert wait_until(lambda: loop.worker_count() == 4)
        recorder.release.set()
        assert wait_until(lambda: len(recorder.done) == 8)
        assert wait_until(lambda: loop.worker_count() == 1)
        time.sleep(0.5)
        assert loop.worker_count() == 1
        loop.enqueue(("ns", "late"))
        assert wait_until(lambda: ("ns", "late") in recorder.done)
    finally:
        loop.halt()


def test_drain_waits_for_in_flight_work_and_every_worker_exits() -> None:
    recorder = Recorder()
    loop = make_loop(recorder, workers=3)
    loop.start()
    for index in range(3):
        loop.enqueue(("ns", f"s{index}"))
    assert wait_until(lambda: recorder.running == 3)
    threading.Timer(0.2, recorder.release.set).start()
    assert loop.drain(SOON)
    assert len(recorder.done) == 3
    assert wait_until(lambda: loop.worker_count() == 0)


def test_reconciles_answered_from_memory_stay_on_one_worker() -> None:
    done: list[Key] = []

    def reconcile(key: Key) -> Result:
        done.append(key)
        return Result()

    loop = Loop(f"test-{uuid.uuid4().hex[:10]}", reconcile, 8)
    for index in range(2000):
        loop.enqueue(("ns", f"s{index}"))
    loop.start()
    try:
        assert wait_until(lambda: len(done) == 2000)
        # No reconcile waited on I/O: more threads would only have taken turns at the interpreter.
        assert loop.worker_count() == 1
    finally:
        loop.halt()


def test_a_reconcile_stuck_on_io_gets_company_without_a_new_key() -> None:
    recorder = Recorder()
    loop = make_loop(recorder, workers=2)
    loop.enqueue(("ns", "stuck"))
    loop.enqueue(("ns", "waiting"))
    loop.start()
    try:
        # Both keys were queued before start: nothing new arrives while the first one hangs.
        assert wait_until(lambda: recorder.running == 2)
        recorder.release.set()
        assert wait_until(lambda: len(recorder.done) == 2)
    finally:
        loop.halt()


def test_reconciles_that_send_requests_get_every_worker() -> None:
    lock = threading.Lock()
    running, most, done = [0], [0], []

    def reconcile(key: Key) -> Result:
        with waits.waiting():  # a quick request, as the API client marks it
            pass
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
            done.append(key)
        return Result()

    loop = Loop(f"test-{uuid.uuid4().hex[:10]}", reconcile, 6)
    loop.start()
    try:
        for index in range(200):
            loop.enqueue(("ns", f"s{index}"))
        assert wait_until(lambda: len(done) == 200)
        assert most[0] == 6
    finally:
        loop.halt()


def test_a_reconcile_slow_without_a_request_starts_no_worker() -> None:
    gate = threading.Event()
    done: list[Key] = []

    def reconcile(key: Key) -> Result:
        gate.wait(SOON)  # slow, but not on the network: the interpreter's lock, say
        done.append(key)
        return Result()

    loop = Loop(f"test-{uuid.uuid4().hex[:10]}", reconcile, 4)
    for index in range(5):
        loop.enqueue(("ns", f"s{index}"))
    loop.start()
    try:
        time.sleep(0.3)
        assert loop.worker_count() == 1
        gate.set()
        assert wait_until(lambda: len(done) == 5)
    finally:
        loop.halt()


def test_concurrent_wake_ups_never_start_more_workers_than_the_concurrency() -> None:
    recorder = Recorder()
    loop = make_loop(recorder, workers=4)
    for index in range(30):
        loop.enqueue(("ns", f"s{index}"))

    def stuck_after_a_while() -> bool:
        time.sleep(0.05)  # the askers all get here before any of them starts a worker
        return True

    loop._stuck = stuck_after_a_while  # type: ignore[method-assign]
    # As start() does, but with no worker yet: every asker races to start the first one.
    loop._accepting.set()
    loop.queue.on_ready = loop._on_ready
    barrier = threading.Barrier(16)

    def ask() -> None:
        barrier.wait()
        loop._on_ready(30)

    askers = [threading.Thread(target=ask) for _ in range(16)]
    try:
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join()
        assert loop.worker_count() == 4
        recorder.release.set()
        assert wait_until(lambda: len(recorder.done) == 30)
        assert recorder.most == 4
    finally:
        recorder.release.set()
        loop.halt()
