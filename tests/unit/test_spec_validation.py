from __future__ import annotations

from typing import Any

import pytest

from controller.reconcilers.spec import SpecProblem, git_ref_problem, git_url_problem, validate_spec


def session_with(spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s1", "namespace": "proj"}, "spec": spec}


def fields(spec: Any) -> list[str]:
    return [problem.field for problem in validate_spec(session_with(spec))]


GOOD_SPECS: list[dict[str, Any]] = [
    {},
    {"initialPrompt": "hi", "displayName": "My session", "interactive": True, "stopOnRunFinished": False},
    {"initialPrompt": "x" * 102400},
    {"timeout": 0, "inactivityTimeout": 0},
    {"timeout": 3600, "inactivityTimeout": 86400},
    {"repos": []},
    {"repos": [{"url": "https://github.com/org/repo.git", "branch": "feature/x-1", "autoPush": True}]},
    {"repos": [{"url": "http://git.local:3000/org/repo"}]},
    {"repos": [{"url": "ssh://git@github.com:22/org/repo.git"}]},
    {"repos": [{"url": "git://example.org/repo"}]},
    {"repos": [{"url": "git@github.com:org/repo.git", "branch": "release-1.2"}]},
    {"activeWorkflow": {"gitUrl": "https://github.com/org/wf.git", "branch": "main", "path": "flows/spec"}},
    {"activeWorkflow": {"gitUrl": "https://github.com/org/wf.git", "path": ""}},
    {"llmSettings": {"model": "claude-sonnet-4-6", "temperature": 0, "maxTokens": 1}},
    {"llmSettings": {"temperature": 2.0}},
    {"userContext": {"userId": "u", "displayName": "U", "groups": ["a", "b"]}},
    {"environmentVariables": {"A": "1", "_B2": "", "PARENT_SESSION_ID": "p"}},
    {"environmentVariables": {f"V{i}": "x" for i in range(100)}},
    {"mcpServers": {"custom": {"srv": {"command": "x", "args": ["-y"]}}, "disabled": ["github"]}},
    {"unknownField": {"anything": 1}},
]


@pytest.mark.parametrize("spec", GOOD_SPECS)
def test_good_specs_have_no_problems(spec: dict[str, Any]) -> None:
    assert validate_spec(session_with(spec)) == []


WF = "https://github.com/o/wf"

BAD_SPECS: list[tuple[Any, str]] = [
    (None, "spec"),
    ("text", "spec"),
    ([], "spec"),
    ({"initialPrompt": 5}, "spec.initialPrompt"),
    ({"initialPrompt": "x" * 102401}, "spec.initialPrompt"),
    ({"initialPrompt": "é" * 51201}, "spec.initialPrompt"),
    ({"displayName": "d" * 257}, "spec.displayName"),
    ({"displayName": ["d"]}, "spec.displayName"),
    ({"interactive": "true"}, "spec.interactive"),
    ({"stopOnRunFinished": 1}, "spec.stopOnRunFinished"),
    ({"timeout": -1}, "spec.timeout"),
    ({"timeout": True}, "spec.timeout"),
    ({"timeout": 1.5}, "spec.timeout"),
    ({"timeout": "300"}, "spec.timeout"),
    ({"inactivityTimeout": -5}, "spec.inactivityTimeout"),
    ({"repos": "https://github.com/org/repo"}, "spec.repos"),
    ({"repos": [{"url": "https://github.com/o/r"}, "x"]}, "spec.repos[1]"),
    ({"repos": [{"branch": "main"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": 42}]}, "spec.repos[0].url"),
    ({"repos": [{"url": ""}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://github.com/o/r"}, {"url": "file:///etc/passwd"}]}, "spec.repos[1].url"),
    ({"repos": [{"url": "ext::sh -c touch% /tmp/pwned"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "ext::sh"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "-uhttps://github.com/o/r"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://github.com/o/r with space"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://github.com/o/r\n"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "ftp://example.org/repo"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://github.com"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https:///org/repo"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://host:99999/o/r"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "ssh://-oProxyCommand=x/o/r"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "/srv/git/repo"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "../repo"}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://h/" + "a" * 3000}]}, "spec.repos[0].url"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "a b"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "a..b"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "-f"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "/x"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "x/"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "x.lock"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "x~1"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "a:b"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": "a\\b"}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": ""}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "branch": 7}]}, "spec.repos[0].branch"),
    ({"repos": [{"url": "https://github.com/o/r", "autoPush": "yes"}]}, "spec.repos[0].autoPush"),
    ({"activeWorkflow": "https://github.com/o/wf"}, "spec.activeWorkflow"),
    ({"activeWorkflow": {"gitUrl": "file:///wf"}}, "spec.activeWorkflow.gitUrl"),
    ({"activeWorkflow": {"gitUrl": WF, "branch": "a^b"}}, "spec.activeWorkflow.branch"),
    ({"activeWorkflow": {"gitUrl": WF, "path": "/abs"}}, "spec.activeWorkflow.path"),
    ({"activeWorkflow": {"gitUrl": WF, "path": "a/../../b"}}, "spec.activeWorkflow.path"),
    ({"activeWorkflow": {"gitUrl": WF, "path": ".."}}, "spec.activeWorkflow.path"),
    ({"activeWorkflow": {"gitUrl": WF, "path": "a\\b"}}, "spec.activeWorkflow.path"),
    ({"llmSettings": []}, "spec.llmSettings"),
    ({"llmSettings": {"model": ""}}, "spec.llmSettings.model"),
    ({"llmSettings": {"model": "m" * 257}}, "spec.llmSettings.model"),
    ({"llmSettings": {"model": 4}}, "spec.llmSettings.model"),
    ({"llmSettings": {"temperature": 2.5}}, "spec.llmSettings.temperature"),
    ({"llmSettings": {"temperature": -0.1}}, "spec.llmSettings.temperature"),
    ({"llmSettings": {"temperature": "0.5"}}, "spec.llmSettings.temperature"),
    ({"llmSettings": {"temperature": True}}, "spec.llmSettings.temperature"),
    ({"llmSettings": {"temperature": float("nan")}}, "spec.llmSettings.temperature"),
    ({"llmSettings": {"temperature": 10**400}}, "spec.llmSettings.temperature"),
    ({"llmSettings": {"maxTokens": 0}}, "spec.llmSettings.maxTokens"),
    ({"llmSettings": {"maxTokens": 1.0}}, "spec.llmSettings.maxTokens"),
    ({"userContext": "u"}, "spec.userContext"),
    ({"userContext": {"groups": "admins"}}, "spec.userContext.groups"),
    ({"userContext": {"groups": ["a", 1]}}, "spec.userContext.groups[1]"),
    ({"userContext": {"userId": 9}}, "spec.userContext.userId"),
    ({"environmentVariables": ["A=1"]}, "spec.environmentVariables"),
    ({"environmentVariables": {"A": 1}}, "spec.environmentVariables.A"),
    ({"environmentVariables": {"A": None}}, "spec.environmentVariables.A"),
    ({"environmentVariables": {"1A": "x"}}, 'spec.environmentVariables["1A"]'),
    ({"environmentVariables": {"A-B": "x"}}, 'spec.environmentVariables["A-B"]'),
    ({"environmentVariables": {"": "x"}}, 'spec.environmentVariables[""]'),
    ({"environmentVariables": {f"V{i}": "x" for i in range(101)}}, "spec.environmentVariables"),
    ({"environmentVariables": {"A": "x" * 200000, "B": "y" * 70000}}, "spec.environmentVariables"),
    ({"mcpServers": "x"}, "spec.mcpServers"),
    ({"mcpServers": {"custom": []}}, "spec.mcpServers.custom"),
    ({"mcpServers": {"custom": {"srv": "cmd"}}}, "spec.mcpServers.custom.srv"),
    ({"mcpServers": {"disabled": "github"}}, "spec.mcpServers.disabled"),
    ({"mcpServers": {"disabled": [1]}}, "spec.mcpServers.disabled[0]"),
    ({"mcpServers": {"custom": {"srv": {"blob": "z" * 300000}}}}, "spec.mcpServers"),
]


@pytest.mark.parametrize(("spec", "field"), BAD_SPECS)
def test_bad_specs_name_the_field(spec: Any, field: str) -> None:
    problems = validate_spec(session_with(spec))
    assert field in [p.field for p in problems], problems
    for problem in problems:
        assert isinstance(problem, SpecProblem)
        assert problem.message
        assert len(problem.message) < 300


def test_all_problems_are_reported_at_once() -> None:
    spec = {
        "timeout": -1,
        "interactive": "yes",
        "repos": [{"url": "file:///x"}],
        "llmSettings": {"maxTokens": 0},
    }
    assert fields(spec) == [
        "spec.interactive",
        "spec.timeout",
        "spec.repos[0].url",
        "spec.llmSettings.maxTokens",
    ]


def test_messages_do_not_echo_values() -> None:
    secret_url = "https://user:hunter2-secret@/o/r"
    problems = validate_spec(session_with({"repos": [{"url": secret_url}]}))
    assert problems
    assert all("hunter2" not in p.message for p in problems)


def test_huge_key_is_shortened_in_the_field_path() -> None:
    problems = validate_spec(session_with({"environmentVariables": {"-" * 10000: "x"}}))
    assert len(problems) == 1
    assert len(problems[0].field) < 120


@pytest.mark.parametrize(
    "session",
    [
        {},
        {"spec": None},
        {"metadata": None, "spec": {}},
        None,
        "session",
        [],
        {"spec": {"repos": [None, [], {"url": None}, {"url": {"a": 1}}]}},
        {"spec": {"environmentVariables": {"A": {"nested": True}}}},
        {"spec": {"mcpServers": {"custom": {"s": {"x": {1, 2}}}}}},
        {"spec": {"initialPrompt": "\ud800" * 10}},
        {"spec": {"environmentVariables": {"A": "\udfff"}}},
        {"spec": {"llmSettings": {"temperature": float("inf"), "maxTokens": 10**400}}},
        {"spec": {"activeWorkflow": {"gitUrl": None, "branch": None, "path": 3}}},
        {"spec": {"repos": [{"url": "https://[::1/o/r"}]}},
        {"spec": {"repos": [{"url": "x" * 5_000_000}]}},
    ],
)
def test_malformed_input_never_raises(session: Any) -> None:
    problems = validate_spec(session)
    assert all(isinstance(p, SpecProblem) for p in problems)


def test_missing_spec_is_a_problem() -> None:
    assert [p.field for p in validate_spec({"metadata": {"name": "s"}})] == ["spec"]


@pytest.mark.parametrize(
    "url",
    ["https://github.com/o/r", "git@github.com:o/r.git", "ssh://git@host/o/r", "http://10.0.0.1:8080/r.git"],
)
def test_git_url_accepts(url: str) -> None:
    assert git_url_problem(url) is None


@pytest.mark.parametrize("ref", ["main", "feature/x", "v1.2.3", "user/abc_def-1"])
def test_git_ref_accepts(ref: str) -> None:
    assert git_ref_problem(ref) is None


@pytest.mark.parametrize(
    "ref", ["a..b", "a b", "x.lock", "-x", "/x", "x/", "a@{1}", "a//b", ".hidden", "a/.b", "@", "x."]
)
def test_git_ref_rejects(ref: str) -> None:
    assert git_ref_problem(ref) is not None


def test_problem_reads_as_a_sentence() -> None:
    (problem,) = validate_spec(session_with({"timeout": -1}))
    assert str(problem) == "spec.timeout must be at least 0"
