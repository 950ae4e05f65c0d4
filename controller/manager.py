"""Starts and stops everything: caches, loops, leader election, and the HTTP endpoints.

As in controller-runtime, caches start at once on every replica (a standby keeps a warm cache and
takes over in seconds), while the loops reconcile only while this replica holds the lease. Losing
the lease halts reconciling immediately and the process exits non-zero for its Deployment to
restart it; SIGTERM stops taking work, drains in-flight reconciles, releases the lease and exits 0.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.config import OperatorConfig
from controller.kube import Kube
from controller.leader import LeaderElectionConfig, LeaderElector, default_identity
from controller.loop import Loop
from controller.probes import Server, metrics_server, probe_server
from controller.watchers.cache import KindCache, KindSpec, NamespaceScope
from controller.watchers.informer import WatchSettings

log = logging.getLogger("controller.manager")

CACHE_SYNC_TIMEOUT = 120.0
# How long a signal handed to another thread may wait for the main thread (see wait_for_stop).
SIGNAL_CHECK_INTERVAL = 0.5


def _each(hooks: list[Callable[[str], None]]) -> Callable[[str], None]:
    def call(namespace: str) -> None:
        for hook in hooks:
            hook(namespace)

    return call


@dataclass
class Manager:
    config: OperatorConfig
    kube: Kube
    settings: WatchSettings = field(default_factory=WatchSettings)
    caches: dict[str, KindCache] = field(default_factory=dict)
    loops: list[Loop] = field(default_factory=list)
    # Run once the managed namespaces' caches have started (on every replica, leading or not):
    # caches of fixed namespaces start here, so they are warm when the loops start.
    on_caches_started: list[Callable[[], None]] = field(default_factory=list)
    on_leading: list[Callable[[], None]] = field(default_factory=list)
    # Run at shutdown once the loops have drained, with the seconds left of the shutdown timeout.
    on_shutdown: list[Callable[[float], object]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    # Told of each namespace that becomes managed, or stops being managed (its caches started or
    # stopped first).
    on_namespace_added: list[Callable[[str], None]] = field(default_factory=list)
    on_namespace_removed: list[Callable[[str], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scope: NamespaceScope | None = None
        self.elector: LeaderElector | None = None
        self.servers: list[Server] = []
        self.exit_code = 0
        self.started_loops = threading.Event()

    # -- wiring ----------------------------------------------------------------------------------

    def cache(self, name: str, spec: KindSpec) -> KindCache:
        if name not in self.caches:
            self.caches[name] = KindCache(self.kube, spec, self.settings)
        return self.caches[name]

    def add_loop(self, loop: Loop) -> Loop:
        self.loops.append(loop)
        return loop

    def managed_namespaces(self) -> set[str]:
        return self.scope.managed() if self.scope is not None else set()

    # -- health ----------------------------------------------------------------------------------

    def health_problems(self) -> list[str]:
        problems = self.scope.problems() if self.scope is not None else []
        if self.started_loops.is_set():
            for loop in self.loops:
                if loop.queue.shutting_down and not self.stop_event.is_set():
                    problems.append(f"loop {loop.name} stopped")
        return problems

    def ready_problems(self) -> list[str]:
        if self.scope is None or not self.scope.synced():
            return ["caches not synced"]
        return []

    # -- run -------------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: object) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def start_servers(self) -> None:
        for server in (
            metrics_server(self.config.metrics_bind_address),
            probe_server(self.config.health_probe_bind_address, self.health_problems, self.ready_problems),
        ):
            if server is not None:
                server.start()
                self.servers.append(server)
                log.info("serving on port %d", server.port)

    def start_caches(self) -> None:
        # The initial LISTs allocate millions of short-lived, acyclic objects; the cyclic collector
        # would scan the growing cache again and again while they stream in (a third of the sync
        # time at 10,000 sessions). It resumes once the caches are synced (see _start_loops).
        gc.disable()
        self.scope = NamespaceScope(
            self.kube,
            self.caches.values(),
            namespaces=self.config.namespaces,
            selector=self.config.namespace_selector,
            settings=self.settings,
            on_namespace_added=_each(self.on_namespace_added),
            on_namespace_removed=_each(self.on_namespace_removed),
            cluster_wide=not self.config.watch_per_namespace,
        )
        self.scope.start()
        for hook in self.on_caches_started:
            hook()

    def _start_loops(self) -> None:
        if self.stop_event.is_set():
            return
        assert self.scope is not None
        started = time.monotonic()
        synced = self.scope.wait_for_sync(CACHE_SYNC_TIMEOUT, self.stop_event)
        # What the sync cached lives long: moved out of the collector's generations, it is never
        # scanned again (it is still freed as usual when an update replaces it).
        gc.freeze()
        gc.enable()
        if not synced:
            log.error("caches did not sync within %.0fs; starting the loops anyway", CACHE_SYNC_TIMEOUT)
        else:
            log.info("caches synced in %.2fs", time.monotonic() - started)
        for hook in self.on_leading:
            hook()
        for loop in self.loops:
            loop.start()
        self.started_loops.set()
        log.info("loops started: %s", ", ".join(f"{loop.name}({loop.workers})" for loop in self.loops))

    def _lost_leadership(self) -> None:
        for loop in self.loops:
            loop.halt()
        self.exit_code = 1
        self.stop_event.set()

    def run(self) -> int:
        """Runs until SIGTERM (exit 0) or a lost lease (exit 1)."""
        self.start_servers()
        self.start_caches()
        if self.config.leader_elect:
            namespace = self.config.leader_election_namespace or self.config.operator_namespace
            self.elector = LeaderElector(
                self.kube,
                LeaderElectionConfig(
                    namespace=namespace,
                    name=self.config.leader_election_id,
                    identity=default_identity(),
                    lease_duration=self.config.lease_duration,
                    renew_deadline=self.config.renew_deadline,
                    retry_period=self.config.retry_period,
                ),
                on_started_leading=lambda: threading.Thread(
                    target=self._start_loops, name="start-loops", daemon=True
                ).start(),
                on_stopped_leading=self._lost_leadership,
            )
            self.elector.start()
        else:
            threading.Thread(target=self._start_loops, name="start-loops", daemon=True).start()
        self.wait_for_stop()
        return self.shutdown()

    def wait_for_stop(self) -> None:
        """Blocks the main thread until SIGTERM, SIGINT or a lost lease.

        Not a bare wait(): the kernel may deliver SIGTERM to any of the process's threads, and
        Python runs the handler only in the main thread, when it next executes bytecode. Blocked
        without a timeout, the main thread would never get there and the signal would be ignored.
        """
        while not self.stop_event.wait(SIGNAL_CHECK_INTERVAL):
            pass

    def shutdown(self) -> int:
        deadline = time.monotonic() + self.config.shutdown_timeout
        for loop in self.loops:
            loop.stop_accepting()
        drained = all([loop.drain(max(0.0, deadline - time.monotonic())) for loop in self.loops])
        if not drained:
            log.warning(
                "shutdown: in-flight reconciles did not finish within %.0fs", self.config.shutdown_timeout
            )
        for finish in self.on_shutdown:
            finish(max(1.0, deadline - time.monotonic()))
        if self.elector is not None:
            self.elector.stop(release=self.exit_code == 0)
        if self.scope is not None:
            self.scope.stop()
        for server in self.servers:
            server.stop()
        log.info("stopped (exit %d)", self.exit_code)
        return self.exit_code
