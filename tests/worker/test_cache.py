"""Objects built once per process or once per thread, whichever thread asks first."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from worker.cache import built_once, per_thread

THREADS = 16


def _together(work: Callable[[], object]) -> list[object]:
    """``work()`` in THREADS threads started at once; what each returned."""
    results: list[object] = [None] * THREADS
    gate = threading.Barrier(THREADS)

    def run(k: int) -> None:
        gate.wait()
        results[k] = work()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class Counted:
    """A builder that counts its builds and makes each take a little while."""

    def __init__(self) -> None:
        self.builds = 0
        self._event = threading.Event()

    def __call__(self, name: str) -> list[str]:
        self.builds += 1
        self._event.wait(0.01)  # long enough for every thread to ask meanwhile
        return [name]


def test_built_once_builds_once_for_every_thread_that_asks_at_once() -> None:
    builder = Counted()
    build = built_once(builder)
    results = _together(lambda: build("schema"))
    assert builder.builds == 1
    assert all(result is results[0] for result in results)
    assert build("schema") is results[0]
    assert build("other") == ["other"] and builder.builds == 2


def test_per_thread_builds_once_in_each_thread() -> None:
    builder = Counted()
    build = per_thread(builder)
    mine = build("transform")
    assert build("transform") is mine
    results = _together(lambda: (build("transform"), build("transform")))
    assert builder.builds == 1 + THREADS
    assert len({id(pair[0]) for pair in results} | {id(mine)}) == 1 + THREADS
    assert all(pair[0] is pair[1] for pair in results)


@pytest.mark.parametrize("decorate", [built_once, per_thread])
def test_a_build_that_raises_keeps_nothing(decorate: Callable[..., Callable[[], str]]) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("the file cannot be read")
        return "built"

    build = decorate(flaky)
    with pytest.raises(OSError, match="cannot be read"):
        build()
    assert build() == "built"
    assert build() == "built"
    assert len(attempts) == 2


@pytest.mark.parametrize("decorate", [built_once, per_thread])
def test_cache_clear_builds_again(decorate: Callable[..., Callable[[], object]]) -> None:
    build = decorate(object)
    first = build()
    build.cache_clear()  # type: ignore[attr-defined]
    assert build() is not first
