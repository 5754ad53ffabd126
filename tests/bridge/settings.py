"""The Django project of the django_bridge tests; conftest.py points DJANGO_SETTINGS_MODULE here.

The database is a SQLite file, not ``:memory:``: session lookups run in worker threads, and each
thread would get its own empty in-memory database. conftest.py creates its directory, names it in
``WS4REDIS_BRIDGE_DB_DIR`` (so servers started in a subprocess share it) and removes it.
"""

import os
import tempfile
from pathlib import Path

DATABASE_DIR = Path(os.environ.get("WS4REDIS_BRIDGE_DB_DIR") or tempfile.mkdtemp(prefix="ws4redis-bridge-"))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django_bridge",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "tests.bridge.urls"

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATABASE_DIR / "db.sqlite3")}}

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# Hashing with the default 1M PBKDF2 rounds would take most of a test's time.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "context_processors": ["django_bridge.context_processors.default"],
            # The login page of django.contrib.auth's LoginView (tests/bridge/test_cookies.py).
            "loaders": [
                (
                    "django.template.loaders.locmem.Loader",
                    {
                        "registration/login.html": (
                            '<form method="post">{% csrf_token %}{{ form.as_p }}<button>Log in</button></form>'
                        )
                    },
                ),
                # django_bridge's own pages (its status page).
                "django.template.loaders.app_directories.Loader",
            ],
        },
    }
]

STATIC_URL = "/static/"

USE_TZ = True

# The fixtures set WS4REDIS_CONNECTION (the private test Redis) and WS4REDIS_PREFIX (one per test).
WS4REDIS_EXPIRE = 10
WS4REDIS_SUBPROTOCOLS = ["unittestprotocol"]
