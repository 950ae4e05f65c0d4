from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from controller import logs, probes, tracing
from controller.leader import LeaderElectionConfig
from controller.watchers import informer
from controller.watchers.informer import Backoff

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkRUbUU0In0"
    ".eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjIl0sInN1YiI6InN5c3RlbTpzYSJ9"
    ".Zm9vYmFyLXNpZ25hdHVyZS1ieXRlcw"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token={JWT} end", "token=[REDACTED] end"),
        (JWT, "[REDACTED]"),
        ("Authorization: Bearer xyz", "Authorization: [REDACTED]"),
        ("authorization: bearer abc.def-ghi", "authorization: [REDACTED]"),
        ("no secrets here: eyJ is just a prefix", "no secrets here: eyJ is just a prefix"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert logs.redact(text) == expected


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_object(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    with logs.bind_object("sessions", "team-a", "s1"):
        logger.info("created job %s", "s1-runner")
    logger.warning("outside")
    inside, outside = lines(stream)
    assert inside["msg"] == "created job s1-runner"
    assert (inside["loop"], inside["namespace"], inside["name"]) == ("sessions", "team-a", "s1")
    assert inside["level"] == "info"
    assert inside["logger"] == logger.name
    assert "loop" not in outside and "name" not in outside
    assert outside["level"] == "warning"


def test_json_line_with_exception(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("reconcile failed")
    (entry,) = lines(stream)
    assert "RuntimeError: boom" in entry["error"]


def test_jwt_in_a_message_is_redacted(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    with logs.bind_object("token-secrets", "team-a", "s1"):
        logger.info("refreshed token %s", JWT)
    assert JWT not in stream.getvalue()
    (entry,) = lines(stream)
    assert entry["msg"] == "refreshed token [REDACTED]"
    assert entry["loop"] == "token-secrets"


@pytest.mark.parametrize("bound", [True, False], ids=["inside bind_object", "outside"])
def test_bearer_in_a_message_is_redacted_and_stays_json(
    json_log: tuple[logging.Logger, io.StringIO], bound: bool
) -> None:
    logger, stream = json_log
    if bound:
        with logs.bind_object("jobs", "team-a", "s1"):
            logger.info("calling runner with Authorization: Bearer %s", "sekrit-token")
    else:
        logger.info("calling runner with Authorization: Bearer %s", "sekrit-token")
    assert "sekrit-token" not in stream.getvalue()
    (entry,) = lines(stream)
    assert "[REDACTED]" in entry["msg"]
    if bound:
        assert entry["name"] == "s1"


def test_exporter_none_without_configuration() -> None:
    assert tracing._exporter({}) is None


def test_exporter_console() -> None:
    assert isinstance(tracing._exporter({"OTEL_TRACES_EXPORTER": "console"}), ConsoleSpanExporter)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "None"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
    ],
)
def test_exporter_none_when_disabled(environ: dict[str, str]) -> None:
    assert tracing._exporter(environ) is None


@pytest.mark.parametrize(("lease", "renew", "retry"), [(15.0, 10.0, 2.0), (60.0, 40.0, 10.0)])
def test_leader_config_accepts(lease: float, renew: float, retry: float) -> None:
    accepted = LeaderElectionConfig("ambient-code", "lease", "me", lease, renew, retry)
    accepted.validate()  # raises ValueError when refused
    assert (accepted.lease_duration, accepted.renew_deadline, accepted.retry_period) == (lease, renew, retry)


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "problem"),
    [
        (10.0, 10.0, 2.0, "leaseDuration"),
        (15.0, 2.0, 2.0, "renewDeadline"),
        (15.0, 2.4, 2.0, "renewDeadline"),
    ],
)
def test_leader_config_rejects(lease: float, renew: float, retry: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        LeaderElectionConfig("ambient-code", "lease", "me", lease, renew, retry).validate()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


BASES = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]


def _backoff(clock: FakeClock) -> Backoff:
    settings = informer.WatchSettings()
    return Backoff(settings.backoff_initial, settings.backoff_max, settings.backoff_reset_after, clock)


def test_backoff_base_doubles_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.watchers.informer.random.random", lambda: 0.0)
    clock = FakeClock()
    backoff = _backoff(clock)
    seen = []
    for _ in BASES:
        clock.now += 1
        seen.append(backoff.next())
    assert seen == pytest.approx(BASES)


def test_backoff_jitter_stays_within_one_base() -> None:
    clock = FakeClock()
    backoff = _backoff(clock)
    for _ in range(3):
        for base in BASES:
            clock.now += 5
            value = backoff.next()
            assert base <= value < 2 * base
        clock.now += 121


def test_backoff_jitter_upper_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.watchers.informer.random.random", lambda: 0.999999)
    backoff = _backoff(FakeClock())
    assert 0.8 <= backoff.next() < 1.6


def test_backoff_resets_after_quiet_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.watchers.informer.random.random", lambda: 0.0)
    clock = FakeClock()
    backoff = _backoff(clock)
    for _ in range(4):
        clock.now += 1
        backoff.next()
    clock.now += 120
    assert backoff.next() == pytest.approx(12.8)
    clock.now += 120.5
    assert backoff.next() == pytest.approx(0.8)
    clock.now += 1
    assert backoff.next() == pytest.approx(1.6)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:8081", ("0.0.0.0", 8081)),
        ("0", None),
        ("", None),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int] | None) -> None:
    assert probes.parse_address(address) == expected
