"""Property tests: arbitrary JSON a session may hold never breaks decode, cache, validation or builders.

The strategies draw what the CRD admits and what an attacker or a buggy client would write there:
deep nesting, unicode (surrogates included), huge and negative numbers, odd keys, names with dots
and at the length limits. Example counts are kept small so `make unit` stays fast.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import safe_json
from controller.config import OperatorConfig
from controller.names import (
    is_session_name,
    name_problem,
    runner_job_name,
    runner_role_name,
    runner_rolebinding_name,
    runner_sa_name,
    session_label_value,
    session_service_name,
    temp_content_pod_name,
    temp_content_service_name,
    token_secret_name,
    workspace_pvc_name,
)
from controller.reconcilers import children
from controller.reconcilers.runner_job import build_runner_job
from controller.reconcilers.sessions import refuse
from controller.reconcilers.spec import validate_spec
from controller.watchers.quarantine import admit, rejection
from controller.watchers.store import FrozenDict, strip_managed_fields, thaw

# PROPERTY_EXAMPLES=2000 for a longer hunt; the default keeps `make unit` fast.
FAST = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CONFIG = OperatorConfig()
INT64_MAX = 2**63 - 1

DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A value nested far past any limit, built iteratively."""
    depth = draw(st.integers(min_value=1, max_value=3000))
    value: Any = draw(scalars)
    for index in range(depth):
        value = [value] if index % 2 else {"k": value}
    return value


dns_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
session_names = st.one_of(
    dns_label,
    st.lists(dns_label, min_size=2, max_size=4).map(".".join),
    st.integers(min_value=40, max_value=253).map(lambda n: "a" * n),
    st.integers(min_value=1, max_value=120).map(lambda n: ("ab-" * n)[: min(3 * n, 253)].strip("-") or "a"),
)

specs = st.fixed_dictionaries(
    {},
    optional={
        "initialPrompt": st.text(max_size=50) | json_values,
        "displayName": st.text(max_size=300) | json_values,
        "interactive": st.booleans() | json_values,
        "timeout": st.integers(min_value=-5, max_value=2**64) | json_values,
        "inactivityTimeout": st.integers(min_value=-5, max_value=2**64) | json_values,
        "repos": st.lists(
            st.fixed_dictionaries(
                {"url": st.text(max_size=40) | json_values}, optional={"branch": st.text(max_size=20)}
            ),
            max_size=3,
        )
        | json_values,
        "llmSettings": st.fixed_dictionaries(
            {},
            optional={
                "model": st.text(max_size=20),
                "temperature": st.floats(allow_nan=False) | st.integers(),
                "maxTokens": st.integers(min_value=-1, max_value=2**64),
            },
        )
        | json_values,
        "userContext": st.fixed_dictionaries(
            {},
            optional={
                "userId": st.text(max_size=40),
                "displayName": st.text(max_size=40),
                "groups": json_values,
            },
        ),
        "environmentVariables": st.dictionaries(
            st.text(max_size=12), st.text(max_size=20) | json_values, max_size=5
        ),
        "mcpServers": st.fixed_dictionaries(
            {}, optional={"custom": st.dictionaries(st.text(max_size=8), json_values, max_size=3)}
        )
        | json_values,
    },
)


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, Any]:
    annotations = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "vteam.ambient-code/parent-session-id",
                    "ambient-code.io/desired-phase",
                    "kwok.ambient-code.io/complete-after",
                    "other/x",
                ]
            ),
            st.text(max_size=30),
            max_size=3,
        )
    )
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {
            "name": draw(session_names),
            "namespace": "proj",
            "uid": "uid-1",
            "generation": 1,
            "annotations": annotations,
        },
        "spec": draw(specs),
    }


@FAST
@given(json_values)
def test_decode_round_trips_ordinary_json(value: Any) -> None:
    assert safe_json.loads(json.dumps(value)) == value


@FAST
@given(deep_values())
def test_decode_never_raises_on_any_depth(value: Any) -> None:
    # json.dumps would recurse as deep as the value; the text is built without recursion instead.
    text = json.dumps(value) if _depth(value) < 500 else _dump_iteratively(value)
    decoded = safe_json.loads(text)
    assert decoded == value or _depth(decoded) == 2 * safe_json.MAX_DEPTH + 1


@FAST
@given(st.one_of(json_values, deep_values()))
def test_admit_is_total_and_round_trips_what_it_keeps(value: Any) -> None:
    obj = {"metadata": {"name": "n", "namespace": "ns", "uid": "u"}, "spec": {"x": value}}
    cached = admit("AgenticSession", obj, strip_managed_fields)
    assert isinstance(cached, FrozenDict)
    assert cached["metadata"]["name"] == "n"
    if rejection(cached) is None:
        assert thaw(cached) == obj
    else:
        assert _depth(value) + 2 > safe_json.MAX_DEPTH


@FAST
@given(sessions())
def test_validation_is_total_and_never_echoes_values(session: dict[str, Any]) -> None:
    marker = "zq\u2603marker"
    spec = session["spec"]
    for key in ("displayName", "initialPrompt"):
        if isinstance(spec.get(key), str):
            spec[key] = marker + spec[key]
    env = spec.get("environmentVariables")
    if isinstance(env, dict):
        env["PARENT_SESSION_ID"] = marker
    problems = validate_spec(session)
    for problem in problems:
        assert marker not in str(problem)
        assert problem.field


@FAST
@given(sessions())
def test_a_session_is_refused_or_every_child_is_valid(session: dict[str, Any]) -> None:
    name = session["metadata"]["name"]
    refusal = refuse(session)
    if refusal is not None:
        assert refusal[0] in ("InvalidSpec", "InvalidName")
        assert name_problem(name) is None or refusal[0] == "InvalidName"
        return
    assert is_session_name(name) and "." not in name
    for child in (
        workspace_pvc_name(name),
        runner_sa_name(name),
        runner_role_name(name),
        runner_rolebinding_name(name),
        token_secret_name(name),
        runner_job_name(name),
        temp_content_pod_name(name),
    ):
        assert len(child) <= 63 and DNS1123_SUBDOMAIN.fullmatch(child), child
    for service in (session_service_name(name), temp_content_service_name(name)):
        assert len(service) <= 63 and DNS1035_LABEL.fullmatch(service), service
    assert LABEL_VALUE.fullmatch(session_label_value(name)) and len(session_label_value(name)) <= 63
    job, _ = build_runner_job(session, CONFIG, is_resume=False)
    deadline = job["spec"].get("activeDeadlineSeconds")
    assert deadline is None or 0 < deadline <= INT64_MAX
    for manifest in (
        job,
        children.build_workspace_pvc(session, CONFIG),
        children.build_runner_service_account(session),
        children.build_runner_role(session),
        children.build_runner_role_binding(session),
        children.build_session_service(session, CONFIG),
        children.build_temp_content_pod(session, CONFIG),
    ):
        json.dumps(manifest)
        annotations = manifest["metadata"]["annotations"]
        assert sum(len(k) + len(v.encode()) for k, v in annotations.items()) < 256 * 1024


@FAST
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), session_names)
def test_builders_never_raise_on_any_spec(spec: dict[str, Any], name: str) -> None:
    session = {"metadata": {"name": name, "namespace": "proj", "uid": "u"}, "spec": spec}
    job, warnings = build_runner_job(session, CONFIG, is_resume=True)
    pod = children.build_temp_content_pod(session, CONFIG)
    account = children.build_runner_service_account(session)
    # Whatever the spec holds, each child is built whole, under its own name, and can be sent.
    assert (job["kind"], job["metadata"]["name"]) == ("Job", runner_job_name(name))
    assert (pod["kind"], pod["metadata"]["name"]) == ("Pod", temp_content_pod_name(name))
    assert (account["kind"], account["metadata"]["name"]) == ("ServiceAccount", runner_sa_name(name))
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert len({e["name"] for e in env}) == len(env), "an env var is set twice"
    assert all(isinstance(w, str) for w in warnings)
    json.dumps([job, pod, account])


def _depth(value: Any) -> int:
    depth, layer = 0, [value]
    while layer:
        containers = [v for v in layer if isinstance(v, dict | list | tuple)]
        if not containers:
            break
        depth += 1
        layer = [x for v in containers for x in (v.values() if isinstance(v, dict) else v)]
    return depth


def _dump_iteratively(value: Any) -> str:
    opening: list[str] = []
    while isinstance(value, dict | list):
        if isinstance(value, dict):
            opening.append('{"k":')
            value = value["k"]
        else:
            opening.append("[")
            value = value[0]
    closing = ["}" if o.startswith("{") else "]" for o in reversed(opening)]
    return "".join(opening) + json.dumps(value) + "".join(closing)


objects = st.dictionaries(
    st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status", "data"]),
    json_values
    | st.fixed_dictionaries(
        {"name": st.text(max_size=10), "namespace": st.just("ns")},
        optional={
            "labels": json_values,
            "annotations": json_values,
            "ownerReferences": json_values,
            "resourceVersion": st.text(max_size=5) | json_values,
        },
    ),
    max_size=5,
)


@FAST
@given(
    st.lists(
        st.one_of(objects, deep_values().map(lambda v: {"metadata": {"name": "d"}, "spec": v})), max_size=6
    )
)
def test_every_kind_cache_admits_anything_and_keeps_its_index(items: list[dict[str, Any]]) -> None:
    from controller.watchers import kinds
    from controller.watchers.store import Store

    for spec in (kinds.SESSION_SPEC, kinds.JOB_SPEC, kinds.POD_SPEC, kinds.SECRET_SPEC, kinds.SERVICE_SPEC):
        store = Store(spec.indexers)
        admitted = [
            admit(spec.resource.kind, json.loads(json.dumps(i)) if _depth(i) < 500 else i, spec.transform)
            for i in items
        ]
        store.replace("ns", admitted)
        for obj in admitted:
            assert isinstance(obj, FrozenDict)
            store.upsert(obj)
            store.delete(obj)
