from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from controller import names

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

CHILD_NAME_FUNCTIONS = [
    names.workspace_pvc_name,
    names.runner_sa_name,
    names.runner_role_name,
    names.runner_rolebinding_name,
    names.token_secret_name,
    names.runner_job_name,
    names.session_service_name,
    names.temp_content_pod_name,
    names.temp_content_service_name,
]


def test_crd_identity() -> None:
    assert (names.GROUP, names.VERSION, names.KIND, names.PLURAL) == (
        "vteam.ambient-code",
        "v1alpha1",
        "AgenticSession",
        "agenticsessions",
    )
    assert names.API_VERSION == "vteam.ambient-code/v1alpha1"


def test_annotation_and_label_keys_match_the_contract() -> None:
    assert names.ANNOTATION_DESIRED_PHASE == "ambient-code.io/desired-phase"
    assert names.ANNOTATION_STOP_REASON == "ambient-code.io/stop-reason"
    assert names.ANNOTATION_START_REQUESTED_AT == "ambient-code.io/start-requested-at"
    assert names.ANNOTATION_STOP_REQUESTED_AT == "ambient-code.io/stop-requested-at"
    assert names.ANNOTATION_PARENT_SESSION == "vteam.ambient-code/parent-session-id"
    assert names.ANNOTATION_TEMP_CONTENT_REQUESTED == "ambient-code.io/temp-content-requested"
    assert names.ANNOTATION_TEMP_CONTENT_LAST_ACCESSED == "ambient-code.io/temp-content-last-accessed"
    assert names.ANNOTATION_RUNNER_TOKEN_SECRET == "ambient-code.io/runner-token-secret"
    assert names.ANNOTATION_FORCE_EXECUTE_PROMPT == "ambient-code.io/force-execute-prompt"
    assert names.ANNOTATION_TOKEN_REFRESHED_AT == "ambient-code.io/token-refreshed-at"
    assert names.ANNOTATION_SESSION_NAME == "ambient-code.io/session-name"
    assert names.LABEL_SESSION == "agentic-session"
    assert (names.LABEL_MANAGED_BY, names.MANAGED_BY) == ("app.kubernetes.io/managed-by", "agentic-operator")
    assert names.LABEL_COMPONENT == "app.kubernetes.io/component"
    assert (names.LABEL_APP, names.APP_RUNNER) == ("app", "ambient-code-runner")


def test_short_names_are_unchanged() -> None:
    assert names.bounded_name("abc") == "abc"
    assert names.bounded_name("a" * 63) == "a" * 63


def test_child_names_of_a_short_session_follow_the_original_operator() -> None:
    assert names.workspace_pvc_name("s1") == "ambient-workspace-s1"
    assert names.runner_sa_name("s1") == "ambient-session-s1"
    assert names.runner_role_name("s1") == "ambient-session-s1-role"
    assert names.runner_rolebinding_name("s1") == "ambient-session-s1-rb"
    assert names.token_secret_name("s1") == "ambient-runner-token-s1"
    assert names.runner_job_name("s1") == "s1-runner"
    assert names.session_service_name("s1") == "session-s1"
    assert names.temp_content_pod_name("s1") == "temp-content-s1"
    assert names.temp_content_service_name("s1") == "temp-content-s1"


def test_long_name_is_cut_with_a_hash_suffix() -> None:
    long = "x" * 100
    result = names.bounded_name(long)
    assert len(result) == 63
    assert re.fullmatch(r"x{52}-[0-9a-f]{10}", result)


@pytest.mark.parametrize("limit", [12, 20, 40, 63])
def test_bounded_name_never_exceeds_the_limit(limit: int) -> None:
    for length in range(1, 120):
        assert len(names.bounded_name("a" * length, limit)) <= limit


def test_cut_part_never_ends_with_dash_or_dot() -> None:
    # The cut falls right after a run of '-' and '.' characters.
    name = "a" * 50 + "-.-" + "b" * 30
    result = names.bounded_name(name)
    prefix = result[:-11]
    assert not prefix.endswith(("-", "."))
    assert DNS_1123_LABEL.match(result)


def test_bounded_name_rejects_a_limit_without_room_for_the_hash() -> None:
    with pytest.raises(ValueError):
        names.bounded_name("a" * 30, 11)


@pytest.mark.parametrize("child_name", CHILD_NAME_FUNCTIONS)
def test_seventy_char_session_yields_valid_stable_distinct_children(child_name: Callable[[str], str]) -> None:
    first = "session-" + "a" * 62
    second = "session-" + "a" * 61 + "b"
    assert len(first) == len(second) == 70
    name_a, name_b = child_name(first), child_name(second)
    assert len(name_a) <= 63 and len(name_b) <= 63
    assert name_a == child_name(first)
    assert name_a != name_b
    assert DNS_1123_LABEL.match(name_a)


@pytest.mark.parametrize("child_name", [names.session_service_name, names.temp_content_service_name])
def test_service_names_are_dns_1035_even_for_a_digit_first_session(child_name: Callable[[str], str]) -> None:
    assert DNS_1035_LABEL.match(child_name("1abc"))
    assert DNS_1035_LABEL.match(child_name("9" * 70))


def test_session_label_value_is_bounded() -> None:
    assert names.session_label_value("short") == "short"
    long = "s" * 70
    value = names.session_label_value(long)
    assert len(value) <= 63
    assert value == names.session_label_value(long)


def test_child_labels() -> None:
    assert names.child_labels("s1", names.COMPONENT_RUNNER) == {
        "agentic-session": "s1",
        "app.kubernetes.io/managed-by": "agentic-operator",
        "app.kubernetes.io/component": "runner",
    }
    assert len(names.child_labels("s" * 70, names.COMPONENT_RUNNER)["agentic-session"]) <= 63


def test_child_selector() -> None:
    assert names.child_selector() == "app.kubernetes.io/managed-by=agentic-operator"
    assert names.child_selector(names.COMPONENT_TEMP_CONTENT) == (
        "app.kubernetes.io/managed-by=agentic-operator,app.kubernetes.io/component=temp-content"
    )
