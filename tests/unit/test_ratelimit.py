from __future__ import annotations

import pytest

from controller.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_exponential_doubles_from_base_delay() -> None:
    limiter = ItemExponentialFailureRateLimiter()
    delays = [limiter.when("a") for _ in range(6)]
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16]
    assert limiter.num_requeues("a") == 6


def test_exponential_is_capped_at_max_delay() -> None:
    limiter = ItemExponentialFailureRateLimiter()
    delays = [limiter.when("a") for _ in range(25)]
    assert delays[17] == 655.36
    assert delays[18] == 1000.0
    assert delays[-1] == 1000.0
    assert max(delays) == 1000.0


def test_exponential_survives_huge_failure_counts() -> None:
    limiter = ItemExponentialFailureRateLimiter(base_delay=0.005, max_delay=1000.0)
    for _ in range(2000):
        delay = limiter.when("a")
    assert delay == 1000.0
    assert limiter.num_requeues("a") == 2000


def test_exponential_counts_each_item_separately_and_forget_resets() -> None:
    limiter = ItemExponentialFailureRateLimiter()
    limiter.when("a")
    limiter.when("a")
    assert limiter.when("b") == 0.005
    assert limiter.num_requeues("a") == 2
    assert limiter.num_requeues("b") == 1

    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.005
    assert limiter.num_requeues("b") == 1


def test_exponential_rejects_negative_delays() -> None:
    with pytest.raises(ValueError):
        ItemExponentialFailureRateLimiter(base_delay=-1.0)


def test_bucket_allows_burst_then_spaces_by_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=100, clock=clock)
    assert [limiter.when(i) for i in range(100)] == [0.0] * 100
    assert limiter.when(100) == pytest.approx(0.1)
    assert limiter.when(101) == pytest.approx(0.2)


def test_bucket_refills_with_time() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=100, clock=clock)
    for i in range(100):
        limiter.when(i)
    clock.advance(1.0)
    assert [limiter.when(i) for i in range(10)] == [0.0] * 10
    assert limiter.when("next") == pytest.approx(0.1)


def test_bucket_reservations_are_paid_back_before_new_tokens() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=1, clock=clock)
    assert limiter.when("a") == 0.0
    assert limiter.when("b") == pytest.approx(0.1)
    clock.advance(0.1)
    # The token refilled during that 0.1 s was already promised to "b".
    assert limiter.when("c") == pytest.approx(0.1)


def test_bucket_never_holds_more_than_burst() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=5, clock=clock)
    limiter.when("a")
    clock.advance(3600.0)
    assert [limiter.when(i) for i in range(5)] == [0.0] * 5
    assert limiter.when("over") == pytest.approx(0.1)


def test_bucket_ignores_clock_going_backwards() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=1, clock=clock)
    limiter.when("a")
    clock.advance(-5.0)
    assert limiter.when("b") == pytest.approx(0.1)


def test_bucket_has_no_per_item_state() -> None:
    limiter = BucketRateLimiter(clock=FakeClock())
    limiter.when("a")
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


@pytest.mark.parametrize(("qps", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bucket_rejects_invalid_settings(qps: float, burst: int) -> None:
    with pytest.raises(ValueError):
        BucketRateLimiter(qps=qps, burst=burst)


def test_max_of_returns_the_largest_delay_and_records_everywhere() -> None:
    clock = FakeClock()
    exponential = ItemExponentialFailureRateLimiter(base_delay=0.005)
    bucket = BucketRateLimiter(qps=1.0, burst=1, clock=clock)
    limiter = MaxOfRateLimiter(exponential, bucket)

    assert limiter.when("a") == 0.005
    assert limiter.when("a") == pytest.approx(1.0)
    assert exponential.num_requeues("a") == 2
    assert limiter.num_requeues("a") == 2

    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert exponential.num_requeues("a") == 0


def test_max_of_num_requeues_is_the_maximum() -> None:
    slow = ItemExponentialFailureRateLimiter(base_delay=1.0)
    fast = ItemExponentialFailureRateLimiter(base_delay=0.001)
    limiter = MaxOfRateLimiter(fast, slow)
    slow.when("a")
    assert limiter.when("a") == 2.0
    assert limiter.num_requeues("a") == 2


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError):
        MaxOfRateLimiter()


def test_default_controller_rate_limiter_combines_backoff_and_bucket() -> None:
    clock = FakeClock()
    limiter: RateLimiter = default_controller_rate_limiter(clock=clock)
    assert limiter.when("a") == 0.005
    assert limiter.when("a") == 0.01
    for i in range(98):
        assert limiter.when(("other", str(i))) == 0.005
    # The bucket's burst of 100 is used up, so a fresh key waits for the bucket, not its own backoff.
    assert limiter.when("fresh") == pytest.approx(0.1)
    for _ in range(30):
        limiter.when("a")
    assert limiter.when("a") == 1000.0
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
