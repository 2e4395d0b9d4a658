"""A lease's heartbeat: a thread that beats the study's lease every lease/4 seconds while its
holder works, checks it, and says at once when another process took the study over
(study/identity/lease.py, docs/failures.md#one-writer-per-study)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from study.identity.lease import Lease, Superseded, lease_seconds


class Heartbeat:
    """Beats the lease every lease/4 seconds from a thread while its holder works, and
    checks it: once superseded, `on_lost()` is called and the beats stop. Also stamps the
    parent run's fsvae.heartbeat (this machine's time, for people reading the record). A
    failed beat (the store away for a while) is skipped: the next one counts."""

    def __init__(
        self, lease: Lease, parent_id: str | None = None, on_lost: Callable[[], None] | None = None
    ):
        self.lease, self.parent_id, self.on_lost = lease, parent_id, on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="lease-heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        from study.record.schema import HEARTBEAT

        while not self._stop.wait(lease_seconds() / 4):
            try:
                self.lease.check()
            except Superseded:
                if self.on_lost is not None:
                    self.on_lost()
                return
            except Exception:  # an outage: the next beat tries again
                continue
            try:
                self.lease.beat()
                if self.parent_id:
                    self.lease.client.set_tag(self.parent_id, HEARTBEAT, f"{time.time():.0f}")
            except Exception:
                pass
