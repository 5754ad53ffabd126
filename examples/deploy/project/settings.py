"""Settings of the deployment example: production-like, with no database.

Everything that differs between machines comes from the environment, which ``stack.py`` (or the
systemd unit's ``EnvironmentFile``) provides:

``STACK_REDIS_URL``      the Redis every process shares, e.g. ``redis://127.0.0.1:6379/0`` (required:
                         a server that guessed would quietly talk to the wrong Redis)
``STACK_REDIS_PREFIX``   key prefix of every channel (default: none)
``STACK_ALLOWED_HOSTS``  comma-separated host names (default: ``localhost,127.0.0.1,[::1]``)
``STACK_HISTORY_SIZE``   messages kept per channel for clients that reconnect with ``recover``
                         (default: 0, none kept)
``DJANGO_SECRET_KEY``    the secret key (default: a key for trying the example only)
``STACK_PRESENCE``       facilities whose channels keep presence, comma-separated (default: none)
``STACK_PRESENCE_INTERVAL``  seconds between two rewrites of each process's presence (default: 10)
``STACK_PROCESS_REQUEST``    dotted path of a ``WS4REDIS_PROCESS_REQUEST`` function that says who
                         connects (default: none, so every socket is anonymous)
``STACK_METRICS_PORT``   port of this server's Prometheus metrics at ``/metrics``; with
                         ``--processes N``, process i on this port + i (default: none served)

The project keeps no sessions or users, so it needs no database; a real project adds its own and
keeps its sessions where every process finds them (the database or a cache, not memory).
"""

import os

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "deploy-example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = os.environ.get("STACK_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    # Before staticfiles, so that its runserver (Django and websockets on one port) wins.
    "django_bridge",
    "django.contrib.staticfiles",
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django_bridge.context_processors.default"]},
    }
]

DATABASES: dict = {}

# Signed cookies need no store; the websocket handshake reads them like any other session.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

STATIC_URL = "/static/"
USE_TZ = True

# HAProxy sets X-Forwarded-Proto on every request (and overwrites what a client sent), so
# request.is_secure() and WEBSOCKET_URI's wss:// follow the scheme the browser used.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

# -- ws4redis-tornado ------------------------------------------------------------------------------

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = os.environ.get("STACK_REDIS_URL") or ""
if not WS4REDIS_CONNECTION:
    raise ImproperlyConfigured(
        "STACK_REDIS_URL is not set: set it to the Redis all processes share, such as"
        " redis://127.0.0.1:6379/0, or start the example with examples/deploy/stack.py"
    )
WS4REDIS_PREFIX = os.environ.get("STACK_REDIS_PREFIX") or None
# Every websocket process must keep the same facilities: one that does not counts none of its sockets.
WS4REDIS_PRESENCE = [facility for facility in os.environ.get("STACK_PRESENCE", "").split(",") if facility]
WS4REDIS_PRESENCE_INTERVAL = float(os.environ.get("STACK_PRESENCE_INTERVAL") or 10)
# The project keeps no users; a project that has some names them here, and presence counts them.
WS4REDIS_PROCESS_REQUEST = os.environ.get("STACK_PROCESS_REQUEST") or None
# HAProxy health-checks every runtornado process here (see haproxy.cfg.template).
WS4REDIS_HEALTH_URL = "/ws4redis/health"
# Its answer also counts each process's sockets, which stack.py and the tests read: the processes
# listen on loopback only. Leave it off where anybody may reach the URL.
WS4REDIS_HEALTH_DETAIL = True
WS4REDIS_ALLOWED_CHANNELS = "project.channels.allowed_channels"
# A port of the server's own, on its loopback address like the server itself: not the websocket
# port, which HAProxy makes public (WS4REDIS_METRICS_URL would serve them there too).
WS4REDIS_METRICS_PORT = int(os.environ.get("STACK_METRICS_PORT") or 0) or None
# Every process, and every publisher, must agree on it: a publisher without it sends messages that
# no client can recover.
WS4REDIS_HISTORY_SIZE = int(os.environ.get("STACK_HISTORY_SIZE") or 0)
