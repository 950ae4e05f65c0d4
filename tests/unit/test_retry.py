"""retry_on_conflict follows client-go's RetryOnConflict with DefaultRetry (5 steps)."""

from __future__ import annotations

import pytest

from controller.api_error import ApiError
from controller.retry import DEFAULT_RETRY_STEPS, retry_on_conflict


def failing(conflicts: int, then: object = "written") -> tuple[list[int], object]:
    attempts: list[int] = []

    def attempt(number: int) -> object:
        attempts.append(number)
        if len(attempts) <= conflicts:
            raise ApiError(409, "Conflict", "the object has been modified")
        return then

    return attempts, attempt


def test_first_attempt_success_is_one_call() -> None:
    attempts, attempt = failing(0)
    assert retry_on_conflict(attempt) == "written"  # type: ignore[arg-type]
    assert attempts == [1]


def test_conflicts_are_retried_with_increasing_attempt_numbers() -> None:
    attempts, attempt = failing(3)
    assert retry_on_conflict(attempt) == "written"  # type: ignore[arg-type]
    assert attempts == [1, 2, 3, 4]


def test_gives_up_after_default_steps_with_the_conflict() -> None:
    attempts, attempt = failing(100)
    with pytest.raises(ApiError) as raised:
        retry_on_conflict(attempt)  # type: ignore[arg-type]
    assert raised.value.conflict
    assert attempts == list(range(1, DEFAULT_RETRY_STEPS + 1))


def test_other_errors_are_not_retried() -> None:
    attempts: list[int] = []

    def attempt(number: int) -> None:
        attempts.append(number)
        raise ApiError(422, "Invalid", "bad patch")

    with pytest.raises(ApiError):
        retry_on_conflict(attempt)
    assert attempts == [1]
