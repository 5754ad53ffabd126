"""A database session engine whose loads take 2 seconds, for ``SESSION_ENGINE``."""

from __future__ import annotations

import threading
import time

from django.contrib.sessions.backends import db

loading = threading.Event()
loads_started_at: list[float] = []

DELAY = 2.0


class SessionStore(db.SessionStore):
    def load(self):
        loads_started_at.append(time.monotonic())
        loading.set()
        time.sleep(DELAY)
        return super().load()
