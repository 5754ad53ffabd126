"""Settings of the chat example: a development setup, not one to deploy.

Environment variables (all optional; the browser tests set them):

``CHATSERVER_REDIS_URL``               Redis to use; unset, ``runserver`` uses the Redis on
                                       localhost:6379 or starts an embedded one
``CHATSERVER_REDIS_PREFIX``            key prefix of every channel (default: none)
``CHATSERVER_DATABASE``                path of the SQLite database (default: ``db.sqlite3`` here)
``CHATSERVER_HEARTBEAT_INTERVAL_MS``   how often pages expect a heartbeat (default 5000)
``CHATSERVER_RECONNECT_MAX_MS``        longest pause between reconnection attempts (default 30000)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "chat-example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    # Before staticfiles, so that its runserver (Django and websockets on one port) wins.
    "django_bridge",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatserver.urls"
WSGI_APPLICATION = "chatserver.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                # WEBSOCKET_URI and WS4REDIS_HEARTBEAT, for the pages' WS4Redis clients.
                "django_bridge.context_processors.default",
                "chat.context_processors.client_options",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHATSERVER_DATABASE") or BASE_DIR / "db.sqlite3",
    }
}

# The websocket handshake reads the session, so it must live where every process finds it.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "broadcast"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True

# ``manage.py test`` runs chat/tests.py from any directory.
TEST_RUNNER = "chatserver.runner.ProjectTestRunner"

# -- ws4redis-tornado ------------------------------------------------------------------------------

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = os.environ.get("CHATSERVER_REDIS_URL") or None
WS4REDIS_PREFIX = os.environ.get("CHATSERVER_REDIS_PREFIX") or None
# Each channel keeps its last message for an hour: a page opened later shows it first.
WS4REDIS_EXPIRE = 3600
# The server sends this every 4 seconds; a page that misses 3 in a row reconnects.
WS4REDIS_HEARTBEAT = "--heartbeat--"
# Who may subscribe and publish what, on which facility: see chat/channels.py.
WS4REDIS_ALLOWED_CHANNELS = "chat.channels.allowed_channels"
WS4REDIS_ALLOWED_FACILITIES = "chat.channels.allowed_facility"
# Keep presence in the lobby: who has it open, for its list of people and the direct-message picker.
WS4REDIS_PRESENCE = ["lobby"]

# -- the pages' ws4redis.js clients ----------------------------------------------------------------

# Keep the heartbeat interval above half the server's 4 seconds, or pages miss heartbeats that come.
CHAT_HEARTBEAT_INTERVAL_MS = int(os.environ.get("CHATSERVER_HEARTBEAT_INTERVAL_MS", "5000"))
CHAT_RECONNECT_MAX_MS = int(os.environ.get("CHATSERVER_RECONNECT_MAX_MS", "30000"))
