"""Objects, events and events/s on a terminal (stderr), at most a few times a second."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total = 0
        self.done = 0
        self.events = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def begin(self, total: int) -> None:
        self.total = total
        self.start = time.monotonic()

    def add_events(self, n: int) -> None:
        self.events += n
        self._show()

    def objects_done(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
        self._show(force=True)

    def finish(self) -> None:
        if self.enabled and self.total:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        rate = self.events / max(now - self.start, 1e-6)
        sys.stderr.write(
            f"\r\033[K  objects {self.done}/{self.total}  events {self.events:,}  {rate:,.0f} events/s"
        )
        sys.stderr.flush()
