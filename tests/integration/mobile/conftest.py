"""Fixtures of the mobile integration tests: a retry policy that records its waits."""

from __future__ import annotations

import pytest

from release_actions.metrics.retry import RetryPolicy
from tests.support.sleeps import Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(attempts=3, total_seconds=30, backoff_initial=0.1, jitter=0.0, sleep=sleeps)
