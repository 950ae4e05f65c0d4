"""Conflict-safe writes: client-go's RetryOnConflict with its DefaultRetry numbers.

Every write is guarded by the resourceVersion it was computed from, so a concurrent writer makes
ours fail with 409 instead of being silently overwritten; we then re-read, re-apply the mutation and
try again. The first attempt may start from the cache (cheap, usually fresh); every retry reads
the object fresh from the API server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed, wait_random

from controller.kube import MERGE_PATCH, ApiError, Kube, Resource
from controller.watchers.store import thaw

T = TypeVar("T")
JSON = dict[str, Any]

# DefaultRetry = {Steps: 5, Duration: 10ms, Factor: 1.0, Jitter: 0.1}
DEFAULT_RETRY_STEPS = 5
DEFAULT_RETRY_DURATION = 0.010
DEFAULT_RETRY_JITTER = 0.1


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and exc.conflict


def retry_on_conflict(fn: Callable[[int], T], steps: int = DEFAULT_RETRY_STEPS) -> T:
    """Calls fn(attempt) until it does not raise a conflict, at most `steps` times."""
    retrying = Retrying(
        retry=retry_if_exception(is_conflict),
        stop=stop_after_attempt(steps),
        wait=wait_fixed(DEFAULT_RETRY_DURATION)
        + wait_random(0, DEFAULT_RETRY_DURATION * DEFAULT_RETRY_JITTER),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            return fn(attempt.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity re-raises the last error")


Mutation = Callable[[JSON], JSON | None]


def patch_with_retry(
    kube: Kube,
    resource: Resource,
    namespace: str,
    name: str,
    mutate: Mutation,
    *,
    cached: Mapping[str, Any] | None = None,
    subresource: str | None = None,
) -> JSON | None:
    """Computes a merge patch from the current object and writes it guarded by resourceVersion.

    `mutate` gets a private copy of the current object and returns the merge patch to apply (without
    metadata.resourceVersion), or None when nothing needs to change — then nothing is written.
    Returns the object as written, or None when the object is gone or no write was needed.
    """

    def attempt(number: int) -> JSON | None:
        if number == 1 and cached is not None:
            current = thaw(cached)
        else:
            try:
                current = kube.get(resource, namespace, name)
            except ApiError as exc:
                if exc.not_found:
                    return None
                raise
        patch = mutate(current)
        if not patch:
            return None
        patch.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            return kube.patch(
                resource, namespace, name, patch, patch_type=MERGE_PATCH, subresource=subresource
            )
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    return retry_on_conflict(attempt)
