"""Retry-After parsing and the Deadline."""

from __future__ import annotations

import asyncio
import email.utils

import pytest

from gate.errors import FetchError
from gate.sources.registry_http import Deadline, parse_retry_after


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_deadline_sleep_never_overshoots_and_check_raises() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    deadline = Deadline(5, clock=lambda: now[0], sleep=sleep)
    asyncio.run(deadline.sleep(3))
    asyncio.run(deadline.sleep(10))
    assert slept == [3, 2] and deadline.expired
    with pytest.raises(FetchError, match="deadline") as err:
        deadline.check("manifest x")
    assert err.value.reason == "registry-unreachable"
    with pytest.raises(ValueError):
        Deadline(0)
