"""Conflict-safe writes: client-go's RetryOnConflict with its DefaultRetry numbers.

Every write is guarded by the resourceVersion it was computed from, so a concurrent writer makes
ours fail with 409 instead of being silently overwritten; we then re-read, re-apply the mutation and
try again. The first attempt may start from the cache (cheap, usually fresh); every retry reads
the object fresh from the API server.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed, wait_random

from controller.api_error import ApiError
from controller.kube import Kube
from controller.resources import MERGE_PATCH, Resource

T = TypeVar("T")
JSON = dict[str, Any]

# DefaultRetry = {Steps: 5, Duration: 10ms, Factor: 1.0, Jitter: 0.1}
DEFAULT_RETRY_STEPS = 5
DEFAULT_RETRY_DURATION = 0.010
DEFAULT_RETRY_JITTER = 0.1


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and exc.conflict


def retry_on_conflict(fn: Callable[[int], T], steps: int = DEFAULT_RETRY_STEPS) -> T:
    """Calls fn(attempt) until it does not raise a conflict, at most `steps` times.

    The first attempt is a plain call: almost every write (and every no-op) ends there, and a
    reconcile at cold start makes one per loop per session. Retries go through tenacity, each after
    DefaultRetry's wait.
    """
    try:
        return fn(1)
    except ApiError as exc:
        if not exc.conflict or steps <= 1:
            raise
    jitter = DEFAULT_RETRY_DURATION * DEFAULT_RETRY_JITTER
    time.sleep(DEFAULT_RETRY_DURATION + random.uniform(0, jitter))
    retrying = Retrying(
        retry=retry_if_exception(is_conflict),
        stop=stop_after_attempt(steps - 1),
        wait=wait_fixed(DEFAULT_RETRY_DURATION) + wait_random(0, jitter),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            return fn(attempt.retry_state.attempt_number + 1)
    raise AssertionError("unreachable: tenacity re-raises the last error")


Mutation = Callable[[Mapping[str, Any]], JSON | None]


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

    `mutate` gets the current object to read (the cache's frozen copy on the first attempt, a fresh
    read on retries) and returns the merge patch to apply (without metadata.resourceVersion), or
    None when nothing needs to change — then nothing is written. Most calls end there, so the cached
    object is not copied.
    Returns the object as written, or None when the object is gone or no write was needed.
    """

    def attempt(number: int) -> JSON | None:
        current: Mapping[str, Any]
        if number == 1 and cached is not None:
            current = cached
        else:
            fresh = kube.get_or_none(resource, namespace, name)
            if fresh is None:
                return None
            current = fresh
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
