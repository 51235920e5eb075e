"""Bounded waiting in tests, defined once: poll a predicate until it returns something
truthy, and fail with what was awaited when it does not in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
         tolerate: tuple[type[BaseException], ...] = ()) -> T | None:
    """Call ``predicate`` until it returns something truthy (returned); None after
    ``timeout``. Exceptions of the ``tolerate`` types count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05,
               tolerate: tuple[type[BaseException], ...] = ()) -> T:
    """:func:`poll`, raising AssertionError naming ``what`` (and the last exception
    tolerated, if any) after ``timeout``."""
    last: list[Any] = []

    def attempt() -> T:
        try:
            return predicate()
        except tolerate as exc:
            last[:] = [exc]
            raise

    value = poll(attempt, timeout, interval, tolerate)
    if value is None:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                             + (f" (last: {last[0]!r})" if last else ""))
    return value
