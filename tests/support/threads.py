"""Running the same code in several threads at once, against the real database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def in_threads(n: int, target: Callable[[int], Any], *, timeout: float = 30) -> list[Any]:
    """Call ``target(i)`` for i in 0..n-1, each in its own thread (and database connection),
    released together by a barrier. Returns what each returned or raised, in finishing order."""
    results: list[Any] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results.append(target(i))
        except Exception as e:  # the outcome is the point
            results.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results
