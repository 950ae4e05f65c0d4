"""Which session events reach the temp content loop (its predicate)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controller import conditions as c
from controller.names import (
    ANNOTATION_TEMP_CONTENT_REQUESTED,
    temp_content_pod_name,
    temp_content_service_name,
)
from controller.reconcilers.temp_content import concerns
from controller.watchers.store import Delta


class Objects:
    def __init__(self, *names: str):
        self.names = set(names)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if (namespace, name) in {("ns", n) for n in self.names} else None


def ctx(pods: tuple[str, ...] = (), services: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(caches=SimpleNamespace(pods=Objects(*pods), services=Objects(*services)))


def session(annotations: dict[str, str] | None = None, conditions: list[dict[str, str]] | None = None) -> Any:
    return {
        "metadata": {"name": "s", "namespace": "ns", "annotations": annotations or {}},
        "status": {"phase": "Stopped", "conditions": conditions or []},
    }


ASKED = {ANNOTATION_TEMP_CONTENT_REQUESTED: "true"}
READY = [{"type": c.TEMP_CONTENT_POD_READY, "status": c.TRUE}]


@pytest.mark.parametrize(
    ("context", "delta", "heard"),
    [
        (ctx(), Delta("ADDED", None, session()), False),
        (ctx(), Delta("ADDED", None, session(ASKED)), True),
        # The request withdrawn: the loop must hear it to delete the pod.
        (ctx(), Delta("MODIFIED", session(ASKED), session()), True),
        (ctx(pods=(temp_content_pod_name("s"),)), Delta("ADDED", None, session()), True),
        (ctx(services=(temp_content_service_name("s"),)), Delta("MODIFIED", session(), session()), True),
        (ctx(), Delta("MODIFIED", session(), session(conditions=READY)), True),
        (ctx(), Delta("DELETED", session(), None), False),
        (ctx(pods=(temp_content_pod_name("s"),)), Delta("DELETED", session(), None), True),
    ],
)
def test_only_sessions_with_content_pod_business_are_heard(context: Any, delta: Delta, heard: bool) -> None:
    assert concerns(context, delta) is heard
