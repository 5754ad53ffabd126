"""What a test written with django_bridge.testing costs: start once, then open a socket as a
logged-in user, publish from Django and receive, round after round.

Runs in this process with the bridge tests' Django settings (a SQLite file database) and the
embedded Redis, as a project's test suite would; prints the start-up time and the median and 90th
percentile of a round after the first.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from typing import Any

ROUNDS = 30


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bridge.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from django_bridge.publisher import RedisPublisher
    from django_bridge.testing import LiveWebsocketServer

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench-user", password="secret")
    try:
        started = time.perf_counter()
        with LiveWebsocketServer() as server:
            startup = time.perf_counter() - started
            client = server.client()
            durations = []
            for round_ in range(rounds):
                started = time.perf_counter()
                facility = f"speed-{round_}"  # nothing persisted by the round before
                with client.connect(facility, "subscribe-user", user=user) as ws:
                    RedisPublisher(facility=facility, users=[user.username]).publish_message("hello")
                    assert ws.receive() == "hello"
                durations.append(time.perf_counter() - started)
            client.close()
    finally:
        shutil.rmtree(settings.DATABASE_DIR, ignore_errors=True)
    later = sorted(durations[1:])
    return {
        "startup": startup,
        "first": durations[0],
        "median": statistics.median(later),
        "p90": later[int(0.9 * (len(later) - 1))],
        "rounds": rounds,
    }


def cmd_testing_speed(_args: object) -> None:
    result = measure()
    ms = {key: value * 1000 for key, value in result.items() if key != "rounds"}
    print("### A websocket test with django_bridge.testing\n")
    print("| server and Redis start (ms) | first round (ms) | later rounds, median (ms) | later rounds, p90 (ms) |")
    print("|---|---|---|---|")
    print(f"| {ms['startup']:.0f} | {ms['first']:.1f} | {ms['median']:.1f} | {ms['p90']:.1f} |")
    print(f"\n{result['rounds']} rounds: connect as a logged-in user, publish with RedisPublisher, receive.")
