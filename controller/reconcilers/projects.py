"""The projects loop: what a managed namespace gets from the operator, keyed by namespace.

For every managed namespace: the `projectsettings` singleton (created when missing), the group
RoleBindings its spec.groupAccess asks for (created, corrected and removed), the ServiceAccount,
Role and RoleBinding scheduled sessions run as, the default LimitRange, the status fields the
platform reads, and the NetworkPolicy that lets only the backend reach runner pods.

Only objects carrying the operator's labels are ever changed or removed. A namespace that stops
being managed keeps everything except the NetworkPolicy, which is removed (see README, Projects).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from controller.api_error import ApiError
from controller.events import NORMAL, WARNING
from controller.names import LABEL_COMPONENT
from controller.platform import network_policy as policy
from controller.platform import project_settings as ps
from controller.reconcile import Key, Result
from controller.reconcilers.context import Context
from controller.reconcilers.runner_inputs import registry_view
from controller.resources import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS, Resource
from controller.watchers.store import thaw

log = logging.getLogger("controller.reconcilers.projects")

LOOP = "projects"
NETWORK_POLICIES = policy.NETWORK_POLICIES
# Cache names of the objects this loop makes (see controller.operator).
RBAC_BINDINGS, RBAC_ROLES, ACCOUNTS, LIMITS, POLICIES = (
    "rolebindings",
    "roles",
    "serviceaccounts",
    "limitranges",
    "networkpolicies",
)
RETRY_FAILED = 30.0


def project_key(namespace: str) -> Key:
    return (namespace, "")


def runner_policy_ports(ctx: Context) -> list[int]:
    """The ports the NetworkPolicy opens: every port a runner may listen on, the flag's and each
    agent registry runtime's (sessions of one namespace may run different runtimes)."""
    view = registry_view(ctx)
    ports = {ctx.config.runner_port}
    ports.update(runtime.port for runtime in (view.runtimes or {}).values() if runtime.port > 0)
    return sorted(ports)


def policy_sources(ctx: Context) -> list[str]:
    """Who may reach runners: the backend's namespace, and the operator's (runner sync calls them)."""
    return sorted({ctx.config.platform_namespace, ctx.config.operator_namespace})


def reconcile(ctx: Context, managed: Callable[[], set[str]], key: Key) -> Result:
    namespace, _ = key
    if namespace not in managed():
        release(ctx, namespace)
        return Result.done()
    settings = _cached(ctx, namespace)
    if settings is None or (settings.get("metadata") or {}).get("deletionTimestamp"):
        problem = ensure_network_policy(ctx, namespace)
        if settings is None:
            _create_settings(ctx, namespace)
        return Result.after(RETRY_FAILED) if problem else Result.done()
    steps: list[Callable[[], object]] = [
        lambda: ensure_network_policy(ctx, namespace),
        lambda: ensure_group_access(ctx, settings),
        lambda: ensure_trigger_rbac(ctx, settings),
        lambda: ensure_limit_range(ctx, settings),
    ]
    # A namespace set up for the first time gets its independent creates at once: it costs the
    # slowest of them, not their sum (a fleet of hundreds is set up at a first start). Once set
    # up, the steps only read the cache: no thread is needed for that.
    outcomes = ctx.parallel(steps) if _setting_up(ctx, namespace) else [step() for step in steps]
    problems = [cast(str, outcomes[0])]
    bindings, group_problems = cast(tuple[int, list[str]], outcomes[1])
    trigger_ready, limits_ready = cast(bool, outcomes[2]), cast(bool, outcomes[3])
    write_settings_status(
        ctx,
        settings,
        {
            "groupBindingsCreated": bindings,
            "scheduledSessionRBACReady": trigger_ready,
            "limitRangeReady": limits_ready,
        },
    )
    if group_problems or not trigger_ready or not limits_ready or any(problems):
        return Result.after(RETRY_FAILED)
    return Result.done()


def _setting_up(ctx: Context, namespace: str) -> bool:
    """Whether any of the namespace's fixed objects is still missing from the caches."""
    fixed = (
        (POLICIES, policy.POLICY_NAME),
        (ACCOUNTS, ps.TRIGGER_NAME),
        (RBAC_ROLES, ps.TRIGGER_NAME),
        (RBAC_BINDINGS, ps.TRIGGER_NAME),
        (LIMITS, ps.LIMIT_RANGE_NAME),
    )
    return any(_objects(ctx, cache).get(namespace, name) is None for cache, name in fixed)


def _cached(ctx: Context, namespace: str) -> Mapping[str, Any] | None:
    cache = ctx.caches.project_settings
    return cache.get(namespace, ps.SINGLETON) if cache is not None else None


def _objects(ctx: Context, name: str) -> Any:
    return ctx.caches.project_objects[name]


def _create_settings(ctx: Context, namespace: str) -> None:
    if ctx.expectations.pending("ProjectSettings", namespace, ps.SINGLETON):
        return
    try:
        ctx.kube.create(ps.PROJECT_SETTINGS, namespace, ps.default_settings(namespace))
        log.info("created ProjectSettings %s/%s", namespace, ps.SINGLETON)
    except ApiError as exc:
        if not exc.already_exists:
            raise
    ctx.expectations.created("ProjectSettings", namespace, ps.SINGLETON)


# -- group access ----------------------------------------------------------------------------------


def ensure_group_access(ctx: Context, settings: Mapping[str, Any]) -> tuple[int, list[str]]:
    """Makes our group bindings match spec.groupAccess; returns (bindings in place, problems)."""
    namespace = settings["metadata"]["namespace"]
    cache = _objects(ctx, RBAC_BINDINGS)
    wanted = ps.wanted_group_access(settings)
    in_place, problems = 0, []
    for name, (group, role) in sorted(wanted.items()):
        manifest = ps.group_binding(settings, group, role)
        try:
            if _ensure_binding(ctx, cache.get(namespace, name), manifest):
                in_place += 1
            else:
                problems.append(name)
                ctx.recorder.record(
                    settings,
                    WARNING,
                    "GroupAccessConflict",
                    f"RoleBinding {name} exists and was not made by the operator; "
                    f"group access {role} for {group!r} is not granted by it",
                )
        except ApiError as exc:
            problems.append(name)
            ctx.recorder.record(
                settings,
                WARNING,
                "GroupAccessFailed",
                f"RoleBinding {name} for group access could not be written: {exc.status} {exc.reason}",
            )
    for existing in cache.list(namespace):
        name = existing["metadata"]["name"]
        if ps.is_ours(existing, ps.COMPONENT_GROUP_ACCESS) and name not in wanted:
            ctx.kube.delete_ignore_missing(ROLE_BINDINGS, namespace, name)
            ctx.recorder.record(settings, NORMAL, "GroupAccessRemoved", f"RoleBinding {name} removed")
    return in_place, problems


def _binding_in_shape(found: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    role_ref, subjects = thaw(found.get("roleRef")), thaw(found.get("subjects"))
    return bool(role_ref == manifest["roleRef"] and subjects == manifest["subjects"])


def _ensure_binding(ctx: Context, cached: Mapping[str, Any] | None, manifest: dict[str, Any]) -> bool:
    """True when our binding is in place; False when a same-named binding is someone else's."""
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    found: Mapping[str, Any] | None = cached
    if found is None:
        if ctx.expectations.pending("RoleBinding", namespace, name):
            return True
        try:
            ctx.kube.create(ROLE_BINDINGS, namespace, manifest)
            ctx.expectations.created("RoleBinding", namespace, name)
            return True
        except ApiError as exc:
            if not exc.already_exists:
                raise
        found = ctx.kube.get(ROLE_BINDINGS, namespace, name)
    else:
        ctx.expectations.observed("RoleBinding", namespace, name)
    ours = ps.is_ours(found, ps.COMPONENT_GROUP_ACCESS)
    made_by_platform = ((found.get("metadata") or {}).get("labels") or {}).get(
        ps.LABEL_PLATFORM_MANAGED
    ) == "true"
    if not ours and not (made_by_platform and _binding_in_shape(found, manifest)):
        return False
    if thaw(found.get("roleRef")) != manifest["roleRef"]:
        # roleRef cannot change: the binding is made again.
        ctx.kube.delete_ignore_missing(ROLE_BINDINGS, namespace, name)
        ctx.kube.create(ROLE_BINDINGS, namespace, manifest)
        ctx.expectations.created("RoleBinding", namespace, name)
    elif not ours or thaw(found.get("subjects")) != manifest["subjects"]:
        # A binding the platform's operator made is adopted; a hand edit of ours is undone.
        ctx.kube.patch(
            ROLE_BINDINGS,
            namespace,
            name,
            {"metadata": {"labels": meta["labels"]}, "subjects": manifest["subjects"]},
        )
    return True


# -- scheduled sessions and limits -----------------------------------------------------------------


def _ensure_owned(
    ctx: Context,
    resource: Resource,
    cache_name: str,
    manifest: dict[str, Any],
    fields: tuple[str, ...] = (),
) -> None:
    """Creates the object when missing; puts `fields` back in shape when they drifted."""
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    cached = _objects(ctx, cache_name).get(namespace, name)
    if cached is None:
        if ctx.expectations.pending(resource.kind, namespace, name):
            return
        try:
            ctx.kube.create(resource, namespace, manifest)
            ctx.expectations.created(resource.kind, namespace, name)
            return
        except ApiError as exc:
            if not exc.already_exists:
                raise
        cached = ctx.kube.get(resource, namespace, name)
    ctx.expectations.observed(resource.kind, namespace, name)
    drifted = {f: manifest[f] for f in fields if thaw(cached.get(f)) != manifest[f]}
    if drifted or not ps.is_ours(cached, meta["labels"][LABEL_COMPONENT]):
        ctx.kube.patch(resource, namespace, name, {"metadata": {"labels": meta["labels"]}, **drifted})


def ensure_trigger_rbac(ctx: Context, settings: Mapping[str, Any]) -> bool:
    try:
        _ensure_owned(ctx, SERVICE_ACCOUNTS, ACCOUNTS, ps.trigger_service_account(settings))
        _ensure_owned(ctx, ROLES, RBAC_ROLES, ps.trigger_role(settings), ("rules",))
        _ensure_owned(ctx, ROLE_BINDINGS, RBAC_BINDINGS, ps.trigger_role_binding(settings), ("subjects",))
        return True
    except ApiError as exc:
        ctx.recorder.record(
            settings,
            WARNING,
            "SessionTriggerRBACFailed",
            f"the RBAC of scheduled sessions ({ps.TRIGGER_NAME}) could not be written: "
            f"{exc.status} {exc.reason}",
        )
        return False


def ensure_limit_range(ctx: Context, settings: Mapping[str, Any]) -> bool:
    try:
        _ensure_owned(ctx, ps.LIMIT_RANGES, LIMITS, ps.limit_range(settings))
        return True
    except ApiError as exc:
        ctx.recorder.record(
            settings,
            WARNING,
            "LimitRangeFailed",
            f"LimitRange {ps.LIMIT_RANGE_NAME} could not be written: {exc.status} {exc.reason}",
        )
        return False


def write_settings_status(ctx: Context, settings: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Writes only what changed (a steady namespace writes nothing), keeping other fields."""
    current = settings.get("status") if isinstance(settings.get("status"), Mapping) else {}
    changed = {k: v for k, v in wanted.items() if (current or {}).get(k) != v}
    if not changed:
        return
    meta = settings["metadata"]
    try:
        ctx.kube.patch(
            ps.PROJECT_SETTINGS,
            meta["namespace"],
            meta["name"],
            {"status": changed},
            subresource="status",
        )
    except ApiError as exc:
        if not exc.not_found:
            raise


# -- network policy --------------------------------------------------------------------------------


def ensure_network_policy(ctx: Context, namespace: str) -> str:
    """The runner NetworkPolicy, created or put back in shape; '' when in place, else the problem."""
    backend, port = policy_sources(ctx), runner_policy_ports(ctx)
    cached = _objects(ctx, POLICIES).get(namespace, policy.POLICY_NAME)
    if cached is not None and policy.in_shape(cached, backend, port):
        ctx.expectations.observed("NetworkPolicy", namespace, policy.POLICY_NAME)
        return ""
    if cached is None and ctx.expectations.pending("NetworkPolicy", namespace, policy.POLICY_NAME):
        return ""
    manifest = policy.runner_network_policy(namespace, backend, port)
    try:
        if cached is None:
            try:
                ctx.kube.create(NETWORK_POLICIES, namespace, manifest)
                ctx.expectations.created("NetworkPolicy", namespace, policy.POLICY_NAME)
                return ""
            except ApiError as exc:
                if not exc.already_exists:
                    raise
        # A hand edit is undone (the whole spec is replaced, guarded by resourceVersion); a policy
        # of the platform's operator is taken over.
        current = (
            thaw(cached)
            if cached is not None
            else ctx.kube.get(NETWORK_POLICIES, namespace, policy.POLICY_NAME)
        )
        if policy.in_shape(current, backend, port):
            return ""  # made by us moments ago; the cache had not shown it yet
        meta = current.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **manifest["metadata"]["labels"]}
        current["spec"] = manifest["spec"]
        ctx.kube.replace(NETWORK_POLICIES, namespace, policy.POLICY_NAME, current)
        return ""
    except ApiError as exc:
        if exc.conflict:
            raise
        log.warning("NetworkPolicy %s/%s: %s %s", namespace, policy.POLICY_NAME, exc.status, exc.reason)
        return f"{exc.status} {exc.reason}"


def release(ctx: Context, namespace: str) -> None:
    """A namespace no longer managed: its runners are no longer ours to fence, so the policy goes.

    Its cache is gone with the namespace's watches, so the policy is read once to check it is ours;
    everything else stays, unchanged and no longer reconciled.
    """
    try:
        found = ctx.kube.get_or_none(NETWORK_POLICIES, namespace, policy.POLICY_NAME)
    except ApiError as exc:
        if exc.status == 403:
            return
        raise
    if found is not None and policy.is_ours(found):
        ctx.kube.delete_ignore_missing(
            NETWORK_POLICIES,
            namespace,
            policy.POLICY_NAME,
            resource_version=found["metadata"]["resourceVersion"],
        )
        log.info("namespace %s is no longer managed: removed NetworkPolicy %s", namespace, policy.POLICY_NAME)
