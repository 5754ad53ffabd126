"""Settings for ws4redis 0.6.0 as its docs describe, plus two shims it needs to scale.

Shim 1 (here): redis-py >= 6 caps a connection pool at 100 connections, while ws4redis opens
one pub/sub connection per websocket, so ``max_connections`` is raised. Shim 2 is the
``select`` in ``wsgi.py``. ``BENCH_WS4REDIS_DRAIN=1`` additionally swaps in the subscriber
that fixes messages stuck in redis-py's buffer (see ``draining.py``).
"""

import os
from urllib.parse import urlsplit

_redis = urlsplit(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "ws4redis",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "bench.targets.ws4redis_project.urls"
USE_TZ = True

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {
    "host": _redis.hostname,
    "port": _redis.port,
    "db": int(_redis.path.lstrip("/") or 0),
    "password": None,
    "max_connections": 100_000,  # shim 1
}
WS4REDIS_EXPIRE = 0
if os.environ.get("BENCH_WS4REDIS_DRAIN") == "1":
    WS4REDIS_SUBSCRIBER = "bench.targets.ws4redis_project.draining.DrainingSubscriber"
