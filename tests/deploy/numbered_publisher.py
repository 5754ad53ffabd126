"""Broadcast numbered messages from a process of the deployment example, through django_bridge's RedisPublisher.

    python tests/deploy/numbered_publisher.py --count 1000 --interval 0.005 [--facility demo]

Run with the environment of the stack's runtornado processes (``Stack._backend_env()``), so that
it reads the same settings (Redis, prefix, history size) and publishes the way a Django view of
the example does. Message ``n`` is due ``n * interval`` seconds after the start; a late one goes
at once. Each attempt prints one line: ``ok N``, or ``failed N <error>`` when Redis refused or
could not be reached (the number is then skipped, never sent again: a publish whose answer was
lost may still have been applied). ``done`` ends the output.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--facility", default="demo")
    args = parser.parse_args()

    sys.path.insert(0, str(DEPLOY_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django_bridge.publisher import RedisPublisher
    from ws4redis_tornado.exceptions import BrokerUnavailable

    publisher = RedisPublisher(facility=args.facility, broadcast=True)
    print("ready", flush=True)
    started = time.monotonic()
    for number in range(args.count):
        delay = started + number * args.interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            publisher.publish_message(str(number))
        except BrokerUnavailable as exc:
            print(f"failed {number} {exc}", flush=True)
        else:
            print(f"ok {number}", flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
