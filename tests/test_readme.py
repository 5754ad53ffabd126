"""README.md as a newcomer reads it: its runnable program runs, its command lines parse, and the
testing example passes in a new project under ``manage.py test`` and pytest.

A README example that drifts from the code fails here instead of on a reader's machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websockets

from ws4redis_tornado.__main__ import parse_args
from ws4redis_tornado.embedded import free_port

from .processes import ManagedProcess
from .utils import MS
from .wsclient import refused_with

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
RUNS_MARKER = "<!-- tests/test_readme.py runs this program"
PROJECT_MARKER = "<!-- tests/test_readme.py writes this block to "
NOTIFY_ROUTE = 'path("notify/<str:username>/", views.notify)'
PROJECT_TIMEOUT = 120


def runnable_blocks() -> list[str]:
    """The ```python blocks of the README marked as programs to run."""
    return re.findall(re.escape(RUNS_MARKER) + r".*?-->\n```python\n(.*?)```\n", README, re.S)


def core_server_command_lines() -> list[str]:
    """The arguments of each ``python -m ws4redis_tornado`` line in the README's shell blocks."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        lines += re.findall(r"python -m ws4redis_tornado\b(.*)", block)
    return lines


def test_the_readme_program_is_examples_token_server():
    [program] = runnable_blocks()
    assert program == (REPO / "examples" / "token_server.py").read_text(encoding="utf-8")


def test_the_readme_shows_the_core_server_command_lines():
    assert len(core_server_command_lines()) >= 2, "the synopsis and the demo"


@pytest.mark.parametrize("arguments", core_server_command_lines())
def test_each_command_line_of_the_core_server_in_the_readme_parses(arguments):
    # "[--prefix app]" marks an optional argument: take them all. argparse exits on what it refuses.
    parse_args(shlex.split(arguments.replace("[", "").replace("]", "")))


def test_the_readme_program_relays_between_websockets_through_redis(tmp_path, redis_url):
    [program] = runnable_blocks()
    path = tmp_path / "readme_program.py"
    path.write_text(program, encoding="utf-8")
    port = free_port()
    program = ManagedProcess(
        [sys.executable, str(path)],
        log_dir=tmp_path,
        log_name="readme_program",
        merge_output=True,
        env={**os.environ, "REDIS_URL": redis_url, "PORT": str(port)},
        cwd=tmp_path,
        ready_url=f"http://127.0.0.1:{port}/health",
        ready_status=200,
    )
    try:
        with program:
            asyncio.run(relay_for_john(port))
    finally:
        with redis.Redis.from_url(redis_url) as client:
            client.delete("user:john:inbox")  # persisted by the publishing socket
    assert "Traceback" not in program.stdout, program.output


async def relay_for_john(port: int) -> None:
    base = f"ws://127.0.0.1:{port}/ws/inbox"
    refused = await refused_with(websockets.connect(f"{base}?token=wrong&subscribe-user"))
    assert refused.status_code == 403
    async with (
        websockets.connect(f"{base}?token=john-secret&subscribe-user") as inbox,
        websockets.connect(f"{base}?token=john-secret&publish-user") as sender,
    ):
        await sender.send("hello john")
        assert await asyncio.wait_for(inbox.recv(), 5000 * MS) == "hello john"


# -- "Testing a Django project": the example in a project of its own ----------------------------------

MANAGE_PY = """import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""

SETTINGS = """from pathlib import Path

SECRET_KEY = "readme-example"
INSTALLED_APPS = [
    "django_bridge",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "notify",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "project.urls"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": Path(__file__).parent / "db.sqlite3"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
# The developer's own Redis, which the tests must leave alone.
WS4REDIS_CONNECTION = {redis_url!r}
WS4REDIS_PREFIX = {prefix!r}
"""

URLS = f"""from django.urls import path

from notify import views

urlpatterns = [{NOTIFY_ROUTE}]
"""

PYTEST_INI = """[pytest]
DJANGO_SETTINGS_MODULE = project.settings
python_files = tests.py test_*.py
addopts = -p no:cacheprovider
"""

# Not in the README: pytest-django runs the live server's tests outside a transaction, and only those.
DATABASE_TESTS = """from django.db import connection


def test_a_test_using_the_live_server_runs_as_a_transaction_test_case(ws_client):
    assert not connection.in_atomic_block


def test_other_tests_keep_their_transaction(db):
    assert connection.in_atomic_block
"""


def project_blocks() -> dict[str, str]:
    """The README's python blocks of the testing example, by the project file each one is."""
    return dict(re.findall(re.escape(PROJECT_MARKER) + r"(\S+)[^\n]*-->\n```python\n(.*?)```\n", README, re.S))


def test_the_readme_testing_example_has_its_view_tests_and_conftest():
    assert set(project_blocks()) == {"notify/views.py", "notify/tests.py", "conftest.py", "notify/test_notify.py"}
    assert NOTIFY_ROUTE in README


@pytest.fixture
def readme_project(tmp_path, redis_url) -> Iterator[Path]:
    """A new Django project made of the README's blocks; its settings name a Redis it must not touch."""
    project = tmp_path / "project"
    prefix = f"readme-{uuid.uuid4().hex[:8]}"
    files = {
        "manage.py": MANAGE_PY,
        "pytest.ini": PYTEST_INI,
        "project/__init__.py": "",
        "project/settings.py": SETTINGS.format(redis_url=redis_url, prefix=prefix),
        "project/urls.py": URLS,
        "notify/__init__.py": "",
        "notify/test_database.py": DATABASE_TESTS,
        **project_blocks(),
    }
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")
    yield project
    with redis.Redis.from_url(redis_url) as developers_redis:
        assert developers_redis.keys(f"*{prefix}*") == [], "the tests used the Redis of the settings"


def run_in_project(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run Python in ``project`` as a new user would: no redis-server on PATH, none of this suite's variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WS4REDIS_", "DJANGO_", "PYTEST_"))}
    no_programs = project.parent / "empty-path"
    no_programs.mkdir(exist_ok=True)
    env["PATH"] = str(no_programs)
    return subprocess.run(
        [sys.executable, *arguments], cwd=project, env=env, capture_output=True, text=True, timeout=PROJECT_TIMEOUT
    )


def test_the_readme_testing_example_passes_under_manage_py_test(readme_project):
    result = run_in_project(readme_project, "manage.py", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 1 test" in result.stderr


def test_the_readme_testing_example_passes_under_pytest(readme_project):
    result = run_in_project(readme_project, "-m", "pytest")
    assert result.returncode == 0, result.stdout + result.stderr
    # The README's two tests, unittest's and pytest's, and the two about the database.
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout
