"""Waiting in async tests for something to happen, with a safety timeout.

The timeout is a safety net against a hung test, never a timing assertion:
machines are shared and noisy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(condition: Callable[[], T], *, timeout: float = 30.0,
                     pause: Callable[[], Awaitable[object]] = lambda: asyncio.sleep(0.05)) -> T:
    """Await `pause()` until `condition()` is truthy; returns that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := condition()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the safety timeout")
        await pause()
    return result


async def first_result(attempt: Callable[[], Awaitable[T | None]], *, tries: int = 20,
                       failing: str = "no attempt gave a result") -> T:
    """The first result of `attempt()` that is not None, in at most `tries` attempts: for
    figures compared only when nothing moved between two readings (no GC ran meanwhile)."""
    for _ in range(tries):
        if (result := await attempt()) is not None:
            return result
    raise AssertionError(f"{failing} {tries} times in a row")
