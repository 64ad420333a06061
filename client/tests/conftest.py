from __future__ import annotations

import os

import pytest


@pytest.fixture
def redis_url() -> str:
    """The project's Redis (``make test`` sets REDIS_URL). Missing, the test fails: a messaging
    test that silently skipped would prove nothing."""
    url = os.environ.get("FOUNDATION_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("set FOUNDATION_REDIS_URL or REDIS_URL to a running Redis (make test does)")
    return url
