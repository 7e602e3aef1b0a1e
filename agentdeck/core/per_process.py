"""One shared client per process, for the clients Django and django-q2 would otherwise make
per request, per async context or per call (a Redis cache client, a queue broker)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.core.signals import setting_changed

T = TypeVar("T")


class PerProcess(Generic[T]):
    """``factory()``'s result, made on first use and shared by every thread of the process;
    made again in a forked child (a client's sockets belong to the parent) and after
    ``setting`` changes (tests override settings). The object must be safe to share between
    threads."""

    def __init__(self, factory: Callable[[], T], *, setting: str) -> None:
        self._factory = factory
        self._setting = setting
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid: int | None = None
        setting_changed.connect(self._on_setting_changed, weak=False)

    def get(self) -> T:
        value, pid = self._value, os.getpid()
        if value is not None and self._pid == pid:
            return value
        with self._lock:
            if self._value is None or self._pid != pid:
                self._value, self._pid = self._factory(), pid
            return self._value

    def reset(self) -> None:
        self._value = None

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == self._setting:
            self.reset()
