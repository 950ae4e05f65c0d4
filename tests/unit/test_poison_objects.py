"""One bad object never stops the operator: decode, freeze, cache, names and API errors on poison input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import conditions as c
from controller import metrics, safe_json
from controller.api_error import ApiError
from controller.list_decoder import ListDecoder
from controller.names import name_problem, session_service_name
from controller.reconcile import Result
from controller.reconcilers import api_errors
from controller.reconcilers.sessions import refuse
from controller.reconcilers.spec import MAX_SECONDS, validate_spec
from controller.watchers.quarantine import REJECTED, SPEC_TOO_COMPLEX, admit, rejection
from controller.watchers.store import Store, TooComplex, freeze, strip_managed_fields, thaw
from controller.watchers.transforms import pod

DEPTH = 5000


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def deep_session(name: str = "deep", depth: int = DEPTH) -> str:
    return (
        '{"apiVersion":"vteam.ambient-code/v1alpha1","kind":"AgenticSession",'
        f'"metadata":{{"name":"{name}","namespace":"ns","uid":"uid-{name}","generation":1,'
        f'"resourceVersion":"7","managedFields":[{{"fieldsV1":{nested(depth)}}}]}},'
        f'"spec":{{"mcpServers":{{"custom":{{"x":{nested(depth)}}}}}}},'
        '"status":{"phase":"Pending"}}'
    )


def test_loads_survives_nesting_deeper_than_the_interpreter_recurses() -> None:
    with pytest.raises(RecursionError):
        json.loads(nested(DEPTH))
    value = safe_json.loads(nested(DEPTH))
    depth = 0
    while isinstance(value, dict):
        value, depth = value["a"], depth + 1
    assert depth == safe_json.MAX_DEPTH
    # The cut is replaced by a stand-in deeper than the limit on its own.
    for _ in range(safe_json.MAX_DEPTH + 1):
        assert isinstance(value, list)
        value = value[0] if value else None
    assert value is None


def test_a_cut_is_found_in_any_part_of_the_decoded_value() -> None:
    event = safe_json.loads('{"type":"ADDED","object":' + deep_session("in-event") + "}")
    cached = admit("AgenticSession", event["object"], strip_managed_fields)
    assert rejection(cached) is not None
    with pytest.raises(TooComplex):
        freeze(event["object"]["spec"]["mcpServers"]["custom"]["x"]["a"])


def test_prune_skips_brackets_inside_strings_and_keeps_shallow_text() -> None:
    text = '{"s":"[[{{\\"]]","deep":' + "[" * 80 + "]" * 80 + ',"n":1} tail'
    pruned, end = safe_json.prune(text, 0, max_depth=3)
    assert text[end:] == " tail"
    value = json.loads(pruned)
    assert value["s"] == '[[{{"]]' and value["n"] == 1
    assert value["deep"] == [[[[[[]]]]]]  # two levels kept, then a stand-in four deep


def test_prune_reports_an_incomplete_value() -> None:
    with pytest.raises(safe_json.Incomplete):
        safe_json.prune('{"a":[1,2', 0)
    with pytest.raises(ValueError):
        safe_json.loads('{"a":')


def test_huge_integer_literals_decode() -> None:
    assert safe_json.loads("1" * 5000) == float("1" * 5000)


def test_a_list_with_a_deep_item_decodes_every_item() -> None:
    plain = '{"metadata":{"name":"plain"}}'
    body = (
        '{"kind":"L","items":[' + deep_session() + "," + plain + '],"metadata":{"resourceVersion":"9"}}'
    ).encode()
    decoder = ListDecoder(body[i : i + 512] for i in range(0, len(body), 512))
    items = list(decoder)
    assert [i["metadata"]["name"] for i in items] == ["deep", "plain"]
    assert decoder.fields["metadata"] == {"resourceVersion": "9"}


def test_freeze_refuses_depth_over_the_limit_without_recursing_on() -> None:
    value: Any = 1
    for _ in range(safe_json.MAX_DEPTH):
        value = {"a": value}
    assert thaw(freeze(value)) == value
    with pytest.raises(TooComplex):
        freeze({"a": value})
    with pytest.raises(TooComplex):
        freeze([value])


def test_admit_keeps_metadata_and_marks_a_deep_session() -> None:
    before = metrics.poison_objects_total.labels("AgenticSession")._value.get()
    raw = safe_json.loads(deep_session("marked"))
    cached = admit("AgenticSession", raw, strip_managed_fields)
    again = admit("AgenticSession", safe_json.loads(deep_session("marked")), strip_managed_fields)
    assert rejection(cached) is not None and rejection(cached)[0] == SPEC_TOO_COMPLEX  # type: ignore[index]
    assert "64 levels" in cached[REJECTED]["message"]
    assert cached["metadata"]["name"] == "marked" and cached["metadata"]["generation"] == 1
    assert "spec" not in cached and cached["status"] == {"phase": "Pending"}
    assert again == cached
    assert metrics.poison_objects_total.labels("AgenticSession")._value.get() == before + 1  # once


def test_admit_isolates_a_transform_that_raises() -> None:
    weird = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"containerStatuses": "not-a-list"}}
    cached = admit("Pod", {**weird, "status": 5}, pod)
    assert rejection(cached) is None

    def broken(obj: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("boom")

    cached = admit("Pod", weird, broken)
    assert rejection(cached) == ("Unreadable", "the operator could not read the object (KeyError)")


def test_store_keeps_going_after_a_poison_object_and_index_failures() -> None:
    def index(obj: Any) -> list[str]:
        if obj["metadata"]["name"] == "bad":
            raise ValueError("no")
        return ["all"]

    store = Store({"i": index})
    objects = [
        admit("AgenticSession", safe_json.loads(deep_session("d1")), strip_managed_fields),
        {"metadata": {"name": "bad", "namespace": "ns"}},
        {"metadata": {"name": "ok", "namespace": "ns"}},
    ]
    deltas = store.replace("ns", objects)
    assert len(deltas) == 3 and len(store) == 3
    assert {o["metadata"]["name"] for o in store.by_index("i", "all")} == {"d1", "ok"}


def test_a_rejected_session_fails_with_spec_too_complex() -> None:
    cached = admit("AgenticSession", safe_json.loads(deep_session("r1")), strip_managed_fields)
    reason, message = refuse(cached) or ("", "")
    assert reason == c.SPEC_TOO_COMPLEX and "64" in message
    assert c.SPEC_TOO_COMPLEX in c.TERMINAL_REASONS


@pytest.mark.parametrize("name", ["a.b", "x" * 60 + ".y"])
def test_a_dotted_name_is_invalid_name_and_never_echoed(name: str) -> None:
    problem = name_problem(name)
    assert problem is not None and name not in problem
    session = {"metadata": {"name": name, "namespace": "ns"}, "spec": {}}
    assert refuse(session) == (c.INVALID_NAME, problem)


def test_plain_names_map_to_valid_service_names() -> None:
    assert name_problem("abc-1") is None
    assert session_service_name("a" * 253).startswith("session-a")
    assert len(session_service_name("a" * 253)) == 63


def test_timeout_bounds_never_overflow_the_job_deadline() -> None:
    session = {"metadata": {"name": "t"}, "spec": {"timeout": 2**63 - 1, "inactivityTimeout": 10**30}}
    problems = {p.field: p.message for p in validate_spec(session)}
    assert problems["spec.timeout"] == f"must be at most {MAX_SECONDS}"
    assert "spec.inactivityTimeout" in problems
    assert validate_spec({"spec": {"timeout": MAX_SECONDS}}) == []


def test_parent_session_id_is_validated_and_never_echoed() -> None:
    secret = "ghp_SECRET value/../x"
    session = {"metadata": {"name": "c"}, "spec": {"environmentVariables": {"PARENT_SESSION_ID": secret}}}
    problems = validate_spec(session)
    assert [p.field for p in problems] == ["spec.environmentVariables.PARENT_SESSION_ID"]
    assert secret not in str(problems[0])
    annotated = {
        "metadata": {"annotations": {"vteam.ambient-code/parent-session-id": "Bad Name"}},
        "spec": {},
    }
    assert [p.field for p in validate_spec(annotated)] == [
        'metadata.annotations["vteam.ambient-code/parent-session-id"]'
    ]


def test_user_fields_are_bounded() -> None:
    session = {"spec": {"userContext": {"userId": "u" * 5000, "groups": ["g"] * 2000}}}
    assert {p.field for p in validate_spec(session)} == {"spec.userContext.userId", "spec.userContext.groups"}


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (413, True), (422, True), (403, False), (409, False), (429, False), (500, False)],
)
def test_permanent_errors(status: int, permanent: bool) -> None:
    assert ApiError(status, "X", "m").permanent is permanent


def test_server_message_is_one_bounded_line_without_tokens() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    exc = ApiError(422, "Invalid", f'Job "x" is invalid:\n value {token} ' + "z" * 2000)
    text = api_errors.server_message(exc)
    assert token not in text and "[redacted]" in text and "\n" not in text
    assert text.startswith("422 Invalid: Job")
    assert len(text) < 600


class _Listing(list[dict[str, Any]]):
    metadata = {"resourceVersion": "42"}


class _ListingKube:
    def __init__(self, items: list[dict[str, Any]]):
        self.items = items

    def stream_list(self, *args: Any, **kwargs: Any) -> _Listing:
        return _Listing(self.items)


def test_an_informer_lists_and_watches_past_a_poison_object() -> None:
    from controller.resources import SESSIONS
    from controller.watchers.informer import Informer

    deep = safe_json.loads(deep_session("deep-listed"))
    plain = {"metadata": {"name": "plain", "namespace": "ns", "resourceVersion": "3"}}
    seen: list[str] = []
    store = Store()
    informer = Informer(
        _ListingKube([deep, plain]),  # type: ignore[arg-type]
        SESSIONS,
        "ns",
        store,
        transform=strip_managed_fields,
        handlers=[lambda delta: seen.append(delta.type)],
    )
    informer._list("initial")
    assert informer.synced.is_set() and informer.resource_version == "42"
    assert sorted(o["metadata"]["name"] for o in store.list()) == ["deep-listed", "plain"]
    assert rejection(store.get("ns", "deep-listed")) is not None
    informer._handle("MODIFIED", safe_json.loads(deep_session("deep-listed").replace('"7"', '"50"')))
    informer._handle("ADDED", {"metadata": {"name": "later", "namespace": "ns", "resourceVersion": "51"}})
    assert informer.resource_version == "51" and store.get("ns", "later") is not None
    assert seen == ["ADDED", "ADDED", "MODIFIED", "ADDED"]


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj: Any, event_type: str, reason: str, message: str) -> None:
        self.events.append((event_type, reason, message))


class _Ctx:
    def __init__(self, fresh: dict[str, Any] | None):
        self.fresh = fresh
        self.kube = self
        self.recorder = _Recorder()
        self.patches: list[dict[str, Any] | None] = []

    def get_or_none(self, *args: Any) -> dict[str, Any] | None:
        return self.fresh

    def write_status(self, session: Any, loop: str, describe: Any) -> None:
        from controller.status import StatusDraft

        draft = StatusDraft(session, loop)
        describe(draft)
        self.patches.append(draft.patch())


SESSION = {"metadata": {"name": "s", "namespace": "ns", "uid": "u", "generation": 2}, "spec": {}}


def _refusal(status: int) -> ApiError:
    exc = ApiError(status, "Invalid" if status == 422 else "Forbidden", 'jobs.batch "s-runner" is forbidden')
    exc.verb, exc.resource, exc.object_name = "create", "jobs", "s-runner"
    return exc


def test_a_422_on_a_child_fails_the_session_with_the_servers_message() -> None:
    ctx = _Ctx(SESSION)
    result = api_errors.report_api_error(ctx, SESSION, {}, _refusal(422))  # type: ignore[arg-type]
    assert result is not None and result.requeue_after is None and not result.requeue
    status = (ctx.patches[0] or {})["status"]
    assert status["phase"] == "Failed" and status["observedGeneration"] == 2
    reconciled = next(x for x in status["conditions"] if x["type"] == "Reconciled")
    assert reconciled["reason"] == c.PROVISIONING_REJECTED
    assert reconciled["message"].startswith(
        "the API server refused creating jobs s-runner: 422 Invalid: jobs"
    )
    assert ctx.recorder.events[0][:2] == ("Warning", c.PROVISIONING_REJECTED)


def test_a_403_is_reported_after_a_fresh_read_and_retried_later() -> None:
    ctx = _Ctx(SESSION)
    result = api_errors.report_api_error(ctx, SESSION, {}, _refusal(403))  # type: ignore[arg-type]
    assert result is not None and result.requeue_after == api_errors.FORBIDDEN_RETRY_MIN
    status = (ctx.patches[0] or {})["status"]
    assert status["phase"] != "Failed"
    gone = _Ctx(None)
    assert api_errors.report_api_error(gone, SESSION, {}, _refusal(403)) == Result(requeue=True)  # type: ignore[arg-type]
    assert gone.patches == []


@pytest.mark.parametrize("status", [409, 429, 500, 503, 0, 404])
def test_transient_errors_go_back_to_the_queue(status: int) -> None:
    ctx = _Ctx(SESSION)
    assert api_errors.report_api_error(ctx, SESSION, {}, _refusal(status)) is None  # type: ignore[arg-type]
    assert ctx.patches == []


@pytest.mark.parametrize(("status", "requeued"), [(422, False), (400, False), (500, True), (409, True)])
def test_a_loop_does_not_retry_a_request_the_server_refuses_for_good(status: int, requeued: bool) -> None:
    from controller.loop import Loop

    def reconcile(key: tuple[str, str]) -> Result:
        raise ApiError(status, "X", "refused")

    loop = Loop(f"poison-{status}", reconcile, workers=1)
    loop._process(("ns", "s"))
    assert (loop.queue.num_requeues(("ns", "s")) > 0) is requeued
    loop.queue.shut_down()


def test_a_deep_status_keeps_its_readable_fields() -> None:
    raw = safe_json.loads(
        '{"metadata":{"name":"s","namespace":"ns"},"spec":{},'
        '"status":{"phase":"Failed","conditions":[{"type":"Ready"}],"junk":' + nested(DEPTH) + "}}"
    )
    cached = admit("AgenticSession", raw, strip_managed_fields)
    assert rejection(cached) is not None
    assert thaw(cached["status"]) == {"phase": "Failed", "conditions": [{"type": "Ready"}]}
