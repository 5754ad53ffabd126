"""WS4REDIS_HANDSHAKE_TIMEOUT, and what runtornado and runserver do with stalled connections.

The servers run as real subprocesses (tests/bridge/processes.py); runtornado's descriptor limit is
lowered on the running process and its CPU time read from /proc.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from django_bridge import conf, embedded
from ws4redis_tornado.embedded import free_port

from ..rawws import all_closed_by_server, run_out_of_descriptors, stalled_connection
from ..utils import MS
from .processes import ManageCommand, write_settings

HOST = "127.0.0.1"
# No Redis inherited from a runserver that started this test run.
ENV = {embedded.REDIS_URL_VARIABLE: None}


def test_settings_become_the_config():
    assert conf.get_config().handshake_timeout == 10
    with override_settings(WS4REDIS_HANDSHAKE_TIMEOUT=2.5):
        assert conf.get_config().handshake_timeout == 2.5


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("WS4REDIS_HANDSHAKE_TIMEOUT", 0, "django_bridge.E015"),
        ("WS4REDIS_HANDSHAKE_TIMEOUT", None, "django_bridge.E015"),
        ("WS4REDIS_HANDSHAKE_TIMEOUT", "10", "django_bridge.E015"),
    ],
)
def test_a_wrong_value_is_a_system_check_error_naming_the_setting(setting, value, check_id):
    with override_settings(DEBUG=True, **{setting: value}):
        [error] = [m for m in run_checks() if m.id.startswith("django_bridge.")]
    assert error.id == check_id
    assert error.msg.startswith(f"{setting} = {value!r}")
    assert error.hint.startswith(f"Set {setting} to")


def test_runtornado_closes_stalled_connections_and_survives_running_out_of_descriptors(
    tmp_path, redis_url, prefix, redis_client
):
    module = write_settings(
        tmp_path, "limited", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix, WS4REDIS_HANDSHAKE_TIMEOUT=3
    )
    port = free_port()
    args = ("runtornado", "--port", str(port), "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=ENV) as server:
        server.wait_for_url(f"http://{HOST}:{port}/ws4redis/health")
        log = run_out_of_descriptors(server, port, redis_client, prefix)
    text = "\n".join(log)
    assert "Traceback" not in text
    assert 1 <= sum("cannot accept connections" in line for line in log) <= 2, text
    assert len(log) <= 12, text


def test_runserver_closes_connections_stalling_in_their_request(tmp_path, redis_url, prefix):
    module = write_settings(
        tmp_path, "impatient", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix, WS4REDIS_HANDSHAKE_TIMEOUT=0.5
    )
    port = free_port()
    args = ("runserver", f"{HOST}:{port}", "--noreload", "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=ENV) as server, contextlib.ExitStack() as stack:
        server.wait_until(lambda: "Websockets at" in server.stdout, "serving")
        stalled = [stack.enter_context(stalled_connection(port)) for _ in range(5)]
        started = time.monotonic()
        assert all_closed_by_server(stalled, 5000 * MS)
        assert time.monotonic() - started < 3
