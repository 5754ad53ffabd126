"""Channels settings; ``BENCH_CHANNEL_LAYER`` picks ``pubsub`` or ``core`` (RedisChannelLayer)."""

import os

_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
_backend = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}[os.environ.get("BENCH_CHANNEL_LAYER", "pubsub")]

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "channels"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "bench.targets.channels_project.urls"
ASGI_APPLICATION = "bench.targets.channels_project.asgi.application"
USE_TZ = True
CHANNEL_LAYERS = {"default": {"BACKEND": _backend, "CONFIG": {"hosts": [_url]}}}
