"""Counters of work a process did, for tests to assert on instead of timing anything."""

from __future__ import annotations

import threading


class WorkCounter:
    """How many times something ran in this process (thread-safe: some work runs in
    threads). Lets tests assert that two code paths do the same amount of work, or that N
    concurrent attempts did at most the allowed work, without timing them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self) -> None:
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        return self._value
