"""Objects that are costly to build: built once per process, or once per thread.

A worker's threads all start their first invoice together. With ``functools.cache``
each of them would build the same schema or TLS context at once (a worker of 32
threads paid for 32 of each). :func:`built_once` holds one lock while it builds
and hands every later caller the built object without taking it.

Some objects must not be shared between threads at all. An lxml stylesheet runs
with the string dictionary of the thread that compiled it: two threads running
one stylesheet while one of them parses write into the same libxml2 dictionary
at once, which garbles element names and can crash the process. A
:func:`per_thread` object is built by each thread for itself, under the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from functools import wraps
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

BUILD_LOCK = threading.RLock()
"""Held while any :func:`built_once` object is built (re-entrant: one build may need another)."""


class BuiltOnce(Generic[P, T]):
    """A function whose result is kept per argument tuple; see :func:`built_once`."""

    def __init__(self, build: Callable[P, T]) -> None:
        self._build = build
        self._built: dict[Hashable, T] = {}
        wraps(build)(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return self._built[key]
        except KeyError:
            pass
        with BUILD_LOCK:
            if key not in self._built:
                # A build that raises keeps nothing: the next call tries again.
                self._built[key] = self._build(*args, **kwargs)
            return self._built[key]

    def cache_clear(self) -> None:
        """Forget what was built (tests)."""
        with BUILD_LOCK:
            self._built.clear()


def built_once(build: Callable[P, T]) -> BuiltOnce[P, T]:
    """Decorate a builder so that its result is built once per process and argument."""
    return BuiltOnce(build)


class PerThread(Generic[P, T]):
    """A function whose result is kept per thread and argument tuple; see :func:`per_thread`."""

    def __init__(self, build: Callable[P, T]) -> None:
        self._build = build
        self._local = threading.local()
        wraps(build)(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        built: dict[Hashable, T] = self._local.__dict__.setdefault("built", {})
        try:
            return built[key]
        except KeyError:
            pass
        with BUILD_LOCK:
            # A build that raises keeps nothing: the next call tries again.
            built[key] = self._build(*args, **kwargs)
        return built[key]

    def cache_clear(self) -> None:
        """Forget what every thread built (tests)."""
        self._local = threading.local()


def per_thread(build: Callable[P, T]) -> PerThread[P, T]:
    """Decorate a builder so that each thread builds its own result, once per argument."""
    return PerThread(build)


__all__ = ["BUILD_LOCK", "BuiltOnce", "PerThread", "built_once", "per_thread"]
