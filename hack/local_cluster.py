"""A real Kubernetes control plane as local processes: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (standing in for kubelets), with no Docker and no network access.

kind needs a container engine, which CI machines and sandboxes often lack. The upstream binaries,
built once from the Go module proxy by hack/build-binaries.sh, give the same API semantics
(controllers, garbage collection, scheduling, watches, conflicts) in a few seconds of start-up.

Command line: ``local_cluster.py up | down | env | status | restart COMPONENT``. Tests use
:class:`LocalCluster`. Everything a cluster needs lives in one state directory
(``$LOCAL_CLUSTER_DIR``, default ``<repo>/.local-cluster``) so that a cluster started by one process
can be found, reused, restarted and stopped by another.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
# kwok hands out pod IPs counting up from the address written here, so start at .1, not at the network.
POD_CIDR = "10.244.0.1/16"
STATE_VERSION = 1
STOP_GRACE_SECONDS = 10.0
DEFAULT_START_TIMEOUT = 60.0

Json = dict[str, Any]


class ClusterError(RuntimeError):
    """A component failed to start or become healthy; the message names it and quotes its log."""


@dataclass(frozen=True)
class ClusterInfo:
    """How to reach a running local cluster."""

    kubeconfig: Path
    server: str
    etcd_url: str
    state_dir: Path
    reused: bool = False


def go_available() -> bool:
    """Whether the binaries can be built here (build-binaries.sh compiles them with Go)."""
    return shutil.which("go") is not None


def _log(message: str) -> None:
    print(f"local-cluster: {message}", file=sys.stderr, flush=True)


def _default_state_dir() -> Path:
    return Path(os.environ.get("LOCAL_CLUSTER_DIR") or REPO / ".local-cluster").resolve()


def _start_timeout() -> float:
    raw = os.environ.get("LOCAL_CLUSTER_START_TIMEOUT")
    if not raw:
        return DEFAULT_START_TIMEOUT
    try:
        return float(raw)
    except ValueError as exc:
        raise ClusterError(f"LOCAL_CLUSTER_START_TIMEOUT must be a number of seconds, got {raw!r}") from exc


# --------------------------------------------------------------------------------------------------
# processes


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], pgrp [2], start time [19])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


# Components started by this interpreter. Keeping their Popen objects lets us reap them (no zombies
# while a test session runs) without Popen warning that a child outlived its object.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child, so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _alive(pid: int, start_ticks: int | None = None) -> bool:
    """True if ``pid`` runs and is the process we started (pids are reused, so compare start times)."""
    _reap(pid)
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _stop_group(pid: int, start_ticks: int | None, name: str) -> None:
    """SIGTERM the component's process group, SIGKILL what is left after the grace period.

    Every component is started as a session leader, so its process group is its pid and holds
    any helper it forked.
    """
    fields = _proc_stat(pid)
    if fields is not None and start_ticks is not None and int(fields[19]) != start_ticks:
        return  # the pid was reused, so our process group (which would pin the id) is gone
    if not _group_members(pid):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        _reap(pid)
        if not _group_members(pid):
            return
        time.sleep(0.05)
    _log(f"{name} (pid {pid}) ignored SIGTERM for {STOP_GRACE_SECONDS:.0f}s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _reap(pid)
        if not _group_members(pid):
            return
        time.sleep(0.05)
    raise ClusterError(f"{name}: processes {_group_members(pid)} survived SIGKILL")


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1; all sockets stay open until every port is picked."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


# --------------------------------------------------------------------------------------------------
# certificates


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _generate_pki(pki: Path) -> None:
    """CA, serving cert, admin client cert and service-account keys.

    TLS keys are ECDSA P-256 (instant to generate, accepted by every component); the
    service-account signing key is RSA because that is what token consumers expect.
    """
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-cluster-ca")]), ca_key, None, ca=True
    )
    _write(pki / "ca.key", _pem_key(ca_key))
    _write(pki / "ca.crt", _pem_cert(ca_cert), 0o644)

    serving_key = ec.generate_private_key(ec.SECP256R1())
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", SERVICE_IP)]
    serving_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        serving_key,
        (ca_cert, ca_key),
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=sans,
    )
    _write(pki / "serving.key", _pem_key(serving_key))
    _write(pki / "serving.crt", _pem_cert(serving_cert), 0o644)

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_cert = _issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
            ]
        ),
        admin_key,
        (ca_cert, ca_key),
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write(pki / "admin.key", _pem_key(admin_key))
    _write(pki / "admin.crt", _pem_cert(admin_cert), 0o644)

    # The front proxy (request-header) CA lets kube-controller-manager and kube-scheduler delegate
    # authentication to the API server, and lets aggregated API servers trust it.
    proxy_ca_key = ec.generate_private_key(ec.SECP256R1())
    proxy_ca_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-cluster-front-proxy-ca")]),
        proxy_ca_key,
        None,
        ca=True,
    )
    _write(pki / "front-proxy-ca.crt", _pem_cert(proxy_ca_cert), 0o644)
    proxy_key = ec.generate_private_key(ec.SECP256R1())
    proxy_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "front-proxy-client")]),
        proxy_key,
        (proxy_ca_cert, proxy_ca_key),
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write(pki / "front-proxy-client.key", _pem_key(proxy_key))
    _write(pki / "front-proxy-client.crt", _pem_cert(proxy_cert), 0o644)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki / "sa.key", _pem_key(sa_key))
    _write(
        pki / "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        0o644,
    )
    _write(pki / "tokens.csv", f"{secrets.token_hex(24)},admin,admin,system:masters\n".encode())


def _kubeconfig(pki: Path, server: str) -> str:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    return yaml.safe_dump(config, sort_keys=False)


# --------------------------------------------------------------------------------------------------
# HTTP


class _Http:
    """Just enough of a Kubernetes client for bootstrapping, so the harness needs only the stdlib."""

    def __init__(self, pki: Path, server: str) -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def request(self, method: str, url: str, body: Json | None = None, timeout: float = 5) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        full = url if url.startswith(("http://", "https://")) else self.server + url
        req = urllib.request.Request(full, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        ctx = self.ctx if full.startswith("https://") else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())

    def ok(self, url: str) -> bool:
        try:
            status, _ = self.request("GET", url, timeout=2)
        except (OSError, ssl.SSLError):
            return False
        return status == 200


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


# --------------------------------------------------------------------------------------------------
# the cluster


@dataclass
class _Component:
    name: str
    command: list[str]
    port: int
    health_url: str
    pid: int = 0
    start_ticks: int | None = None

    def to_json(self) -> Json:
        return {
            "command": self.command,
            "port": self.port,
            "health_url": self.health_url,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
        }

    @classmethod
    def from_json(cls, name: str, data: Json) -> _Component:
        return cls(
            name,
            list(data["command"]),
            int(data["port"]),
            str(data["health_url"]),
            int(data["pid"]),
            data.get("start_ticks"),
        )

    def alive(self) -> bool:
        return self.pid > 0 and _alive(self.pid, self.start_ticks)


class LocalCluster:
    """Start, find, restart and stop the local control plane recorded in one state directory."""

    def __init__(self, state_dir: Path | None = None, start_timeout: float | None = None) -> None:
        self.state_dir = (state_dir or _default_state_dir()).resolve()
        self.start_timeout = start_timeout if start_timeout is not None else _start_timeout()

    # ---- paths and state

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def _load(self) -> Json | None:
        try:
            state: Json = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("version") == STATE_VERSION else None

    def _save(self, state: Json) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    def _components(self, state: Json) -> list[_Component]:
        return [
            _Component.from_json(name, state["components"][name])
            for name in COMPONENTS
            if name in state.get("components", {})
        ]

    def _info(self, state: Json, reused: bool) -> ClusterInfo:
        return ClusterInfo(
            Path(state["kubeconfig"]), state["server"], state["etcd_url"], self.state_dir, reused
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise commands on one state directory, so two `up`s never start two clusters."""
        while True:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.state_dir))
                except FileNotFoundError:
                    same = False
                if same:  # not removed by a `down` we waited for
                    yield
                    return
            finally:
                os.close(fd)

    # ---- queries

    def info(self) -> ClusterInfo | None:
        """The recorded cluster if all its processes run (no health probe: cheap enough for `env`)."""
        state = self._load()
        if state is None or not self._all_alive(state):
            return None
        return self._info(state, reused=True)

    def is_running(self) -> bool:
        return self.info() is not None

    def _all_alive(self, state: Json) -> bool:
        components = self._components(state)
        return len(components) == len(COMPONENTS) and all(c.alive() for c in components)

    def _healthy(self, state: Json) -> bool:
        http = _Http(self.pki, state["server"])
        return all(c.alive() and http.ok(c.health_url) for c in self._components(state))

    def status(self) -> list[tuple[str, int, bool, bool, int]]:
        """(component, pid, alive, healthy, port) for each recorded component."""
        state = self._load()
        if state is None:
            return []
        http = _Http(self.pki, state["server"])
        rows = []
        for c in self._components(state):
            alive = c.alive()
            rows.append((c.name, c.pid, alive, alive and http.ok(c.health_url), c.port))
        return rows

    # ---- up

    def up(self) -> ClusterInfo:
        with self._locked():
            state = self._load()
            if state is not None and self._all_alive(state):
                recorded = state
                if self._wait(lambda: self._healthy(recorded), min(self.start_timeout, 10)):
                    return self._info(recorded, reused=True)
                _log("the recorded cluster runs but is not healthy; replacing it")
            if state is not None or self.state_file.exists() or any(self.state_dir.iterdir()):
                if state is not None:
                    _log("found a stale cluster in the state directory; cleaning it up")
                self._stop_all(state)
                self._clear_state_dir()
            started = time.monotonic()
            try:
                state = self._start()
            except BaseException:
                self._stop_all(self._load())
                with contextlib.suppress(OSError):
                    self.state_file.unlink()  # keep logs/ for the post-mortem; the next `up` clears them
                raise
            _log(f"cluster up in {time.monotonic() - started:.1f}s")
            return self._info(state, reused=False)

    def _clear_state_dir(self) -> None:
        for entry in self.state_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _binaries(self) -> Path:
        override = os.environ.get("LOCAL_CLUSTER_BIN_DIR")
        if override:
            return Path(override)
        if not go_available():
            raise ClusterError("Go is not installed; hack/build-binaries.sh needs it to build the binaries")
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", str(REPO / "hack" / "build-binaries.sh")], stdout=subprocess.PIPE, text=True, check=False
        )
        if proc.returncode != 0:
            raise ClusterError(f"hack/build-binaries.sh failed with exit code {proc.returncode}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise ClusterError("hack/build-binaries.sh printed no binary directory")
        if time.monotonic() - started > 5:
            _log(f"binaries built in {time.monotonic() - started:.0f}s")
        return Path(lines[-1])

    def _start(self) -> Json:
        bin_dir = self._binaries()
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            if not os.access(bin_dir / name, os.X_OK):
                raise ClusterError(f"{name} is missing from {bin_dir}")
        self.logs.mkdir(parents=True, exist_ok=True)
        _generate_pki(self.pki)
        etcd_port, peer_port, api_port, kcm_port, sched_port, kwok_port = _free_ports(6)
        server = f"https://127.0.0.1:{api_port}"
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.kubeconfig.write_text(_kubeconfig(self.pki, server))
        self.kubeconfig.chmod(0o600)
        components = self._commands(bin_dir, etcd_port, peer_port, api_port, kcm_port, sched_port, kwok_port)
        state: Json = {
            "version": STATE_VERSION,
            "bin_dir": str(bin_dir),
            "server": server,
            "etcd_url": etcd_url,
            "kubeconfig": str(self.kubeconfig),
            "components": {},
        }
        self._save(state)
        http = _Http(self.pki, server)

        def launch(component: _Component) -> None:
            self._launch(component)
            state["components"][component.name] = component.to_json()
            self._save(state)

        launch(components["etcd"])
        self._wait_healthy(components["etcd"], http)
        launch(components["kube-apiserver"])
        self._wait_healthy(components["kube-apiserver"], http)
        self._bootstrap_objects(http)
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            launch(components[name])
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self._wait_healthy(components[name], http)
        self._wait_for(
            "kwok",
            "nodes " + ", ".join(NODE_NAMES) + " to become Ready",
            lambda: all(_node_ready(http, node) for node in NODE_NAMES),
        )
        self._wait_for(
            "kube-controller-manager",
            "the default ServiceAccount in namespace default",
            lambda: http.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
        )
        return state

    def _commands(
        self,
        bin_dir: Path,
        etcd_port: int,
        peer_port: int,
        api_port: int,
        kcm_port: int,
        sched_port: int,
        kwok_port: int,
    ) -> dict[str, _Component]:
        pki, kubeconfig = self.pki, str(self.kubeconfig)
        peer = f"http://127.0.0.1:{peer_port}"
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        serving = [f"--tls-cert-file={pki / 'serving.crt'}", f"--tls-private-key-file={pki / 'serving.key'}"]
        delegated = [f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}"]
        return {
            "etcd": _Component(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    "--name=default",
                    f"--data-dir={self.state_dir / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=default={peer}",
                    *_etcd_no_fsync(bin_dir / "etcd"),
                    "--log-level=warn",
                ],
                etcd_port,
                f"{etcd_url}/health",
            ),
            "kube-apiserver": _Component(
                "kube-apiserver",
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    *serving,
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--token-auth-file={pki / 'tokens.csv'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--authorization-mode=RBAC",
                    "--allow-privileged=true",
                    "--disable-admission-plugins=ServiceAccount",
                    "--endpoint-reconciler-type=none",
                    "--enable-priority-and-fairness=false",
                    # Open watches otherwise hold a stopping server for its whole 60s shutdown timeout;
                    # this caps the HTTP shutdown at 2s, so `restart kube-apiserver` takes seconds.
                    "--shutdown-send-retry-after=true",
                    f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                    f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                ],
                api_port,
                f"https://127.0.0.1:{api_port}/readyz",
            ),
            "kube-controller-manager": _Component(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={kubeconfig}",
                    *delegated,
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={kcm_port}",
                    *serving,
                    "--controllers=*",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--enable-hostpath-provisioner=true",
                    # The default client limit (20 qps) throttles the PV binder and the Job
                    # controller by up to 15 s under a burst of sessions; a real cluster's
                    # controller manager is not the bottleneck a benchmark should measure.
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                ],
                kcm_port,
                f"https://127.0.0.1:{kcm_port}/healthz",
            ),
            "kube-scheduler": _Component(
                "kube-scheduler",
                [
                    str(bin_dir / "kube-scheduler"),
                    f"--kubeconfig={kubeconfig}",
                    *delegated,
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={sched_port}",
                    *serving,
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                ],
                sched_port,
                f"https://127.0.0.1:{sched_port}/healthz",
            ),
            "kwok": _Component(
                "kwok",
                [
                    str(bin_dir / "kwok"),
                    f"--kubeconfig={kubeconfig}",
                    "--manage-nodes-with-label-selector=type=kwok",
                    "--node-ip=172.30.0.1",
                    f"--cidr={POD_CIDR}",
                    "--node-lease-duration-seconds=40",
                    f"--server-address=127.0.0.1:{kwok_port}",
                    "-c",
                    str(REPO / "hack" / "kwok" / "stages.yaml"),
                ],
                kwok_port,
                f"http://127.0.0.1:{kwok_port}/healthz",
            ),
        }

    def _launch(self, component: _Component) -> None:
        log_path = self.logs / f"{component.name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                component.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
        component.pid = proc.pid
        component.start_ticks = _start_ticks(proc.pid)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _wait_healthy(self, component: _Component, http: _Http) -> None:
        def check() -> bool:
            if not component.alive():
                raise self._failure(component.name, "exited during start-up")
            return http.ok(component.health_url)

        if not self._wait(check, self.start_timeout):
            raise self._failure(
                component.name, f"did not answer {component.health_url} within {self.start_timeout:g}s"
            )

    def _wait_for(self, component: str, what: str, predicate: Callable[[], bool]) -> None:
        if not self._wait(predicate, self.start_timeout):
            raise self._failure(component, f"timed out after {self.start_timeout:g}s waiting for {what}")

    def _failure(self, component: str, problem: str) -> ClusterError:
        log_path = self.logs / f"{component}.log"
        return ClusterError(
            f"{component} {problem}.\n--- last lines of {log_path} ---\n{_log_tail(log_path)}\n---"
        )

    def _bootstrap_objects(self, http: _Http) -> None:
        """Create the kwok Nodes and a default StorageClass right after the API server is ready.

        Nodes are created with capacity, allocatable and addresses in their status: Node creation keeps
        the status, and kwok's node-initialize stage preserves what is already there, so the scheduler
        sees realistic sizes instead of kwok's 1k CPU / 1Ti defaults. The StorageClass uses
        kube-controller-manager's built-in hostPath provisioner so PVCs bind as on kind, with kind's
        WaitForFirstConsumer binding: the scheduler then binds the claim itself, whereas Immediate binding
        races the scheduler's cache ("pvc bound to non-existent pv") and can park a pod for minutes.
        """
        resources = {"cpu": "32", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "500Gi"}
        for index, name in enumerate(NODE_NAMES):
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "beta.kubernetes.io/os": "linux",
                        "beta.kubernetes.io/arch": "amd64",
                    },
                },
                "spec": {},
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "addresses": [
                        {"type": "InternalIP", "address": f"172.30.0.{10 + index}"},
                        {"type": "Hostname", "address": name},
                    ],
                },
            }
            self._create(http, "/api/v1/nodes", node)
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
        self._create(http, "/apis/storage.k8s.io/v1/storageclasses", storage_class)

    def _create(self, http: _Http, path: str, body: Json) -> None:
        status, response = http.request("POST", path, body)
        if status not in (200, 201, 409):
            raise ClusterError(
                f"kube-apiserver refused to create {body['kind']} "
                f"{body['metadata']['name']}: HTTP {status} {response}"
            )

    # ---- restart and down

    def restart(self, component: str) -> None:
        """Stop one component and start it again with the same command line, ports and data."""
        if component not in COMPONENTS:
            raise ClusterError(f"unknown component {component!r}; expected one of {', '.join(COMPONENTS)}")
        with self._locked():
            state = self._load()
            if state is None or component not in state.get("components", {}):
                raise ClusterError("no local cluster is recorded in " + str(self.state_dir))
            target = _Component.from_json(component, state["components"][component])
            _stop_group(target.pid, target.start_ticks, component)
            self._launch(target)
            state["components"][component] = target.to_json()
            self._save(state)
            self._wait_healthy(target, _Http(self.pki, state["server"]))

    def down(self) -> None:
        if not self.state_dir.exists():
            return
        with self._locked():
            self._stop_all(self._load())
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _stop_all(self, state: Json | None) -> None:
        if state is None:
            return
        for component in reversed(self._components(state)):
            _stop_group(component.pid, component.start_ticks, component.name)


def _etcd_no_fsync(etcd: Path) -> list[str]:
    """``--unsafe-no-fsync`` (etcd 3.5+) makes etcd several times faster on slow disks; the etcd 3.4
    that build-binaries.sh falls back to would refuse to start with it."""
    try:
        out = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    first = out.split("\n", 1)[0]  # "etcd Version: 3.5.24"
    try:
        major, minor = (int(part) for part in first.rsplit(" ", 1)[-1].split(".")[:2])
    except ValueError:
        return []
    return ["--unsafe-no-fsync"] if (major, minor) >= (3, 5) else []


def _node_ready(http: _Http, name: str) -> bool:
    status, node = http.request("GET", f"/api/v1/nodes/{name}")
    if status != 200:
        return False
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    # The node lifecycle controller taints a node not-ready until it has seen it Ready.
    return ready and not node.get("spec", {}).get("taints")


# --------------------------------------------------------------------------------------------------
# command line


def _export(info: ClusterInfo) -> None:
    print(f"export KUBECONFIG={info.kubeconfig}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="local-cluster.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the cluster, or print the env of the one already running")
    sub.add_parser("down", help="stop every component and delete the state directory")
    sub.add_parser("env", help="print `export KUBECONFIG=...` for the running cluster")
    sub.add_parser("status", help="show each component's pid, liveness, health and port")
    restart = sub.add_parser("restart", help="restart one component with the same flags and ports")
    restart.add_argument("component", choices=COMPONENTS)
    args = parser.parse_args(argv)

    cluster = LocalCluster()
    try:
        if args.command == "up":
            started = time.monotonic()
            info = cluster.up()
            if info.reused:
                _log(f"reusing the running cluster in {info.state_dir} ({time.monotonic() - started:.1f}s)")
            _export(info)
        elif args.command == "env":
            running = cluster.info()
            if running is None:
                _log(f"no running cluster in {cluster.state_dir}; run `hack/local-cluster.sh up`")
                return 1
            _export(running)
        elif args.command == "status":
            rows = cluster.status()
            if not rows:
                _log(f"no cluster recorded in {cluster.state_dir}")
                return 1
            print(f"{'COMPONENT':<25} {'PID':>8}  {'STATE':<6} {'HEALTH':<9} PORT")
            for name, pid, alive, healthy, port in rows:
                state = "alive" if alive else "dead"
                health = "healthy" if healthy else "unhealthy"
                print(f"{name:<25} {pid:>8}  {state:<6} {health:<9} {port}")
            return 0 if len(rows) == len(COMPONENTS) and all(row[2] for row in rows) else 1
        elif args.command == "restart":
            started = time.monotonic()
            cluster.restart(args.component)
            _log(f"{args.component} restarted in {time.monotonic() - started:.1f}s")
        elif args.command == "down":
            cluster.down()
            _log("cluster stopped")
    except ClusterError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
