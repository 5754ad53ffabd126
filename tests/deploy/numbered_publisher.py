"""Broadcast numbered messages as a Django view of the deployment example would: through django_bridge's RedisPublisher.

    python tests/deploy/numbered_publisher.py --count 1000 --interval 0.005 --final 20 [--facility demo]

Run it with the environment of the stack's runtornado processes, so that it reads the same
settings (Redis, prefix, history size) and so publishes through the history script. Message ``n``
is due ``n * interval`` seconds after the start; a late one goes at once. After ``count``
messages it prints ``holding`` and waits for SIGUSR1, then sends ``final`` more the same way: a
test lets the last ones go once its clients are back. Each attempt prints ``ok N``, or
``failed N <error>`` when Redis refused or could not be reached; a failed number is skipped,
never sent again, since a publish whose answer was lost may still have been applied. ``done``
ends the output.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--final", type=int, default=0)
    parser.add_argument("--facility", default="demo")
    args = parser.parse_args()
    # Blocked from the start, so that a SIGUSR1 sent before the hold waits for it instead of killing us.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    sys.path.insert(0, str(DEPLOY_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django_bridge.publisher import RedisPublisher
    from ws4redis_tornado.exceptions import BrokerUnavailable

    publisher = RedisPublisher(facility=args.facility, broadcast=True)

    def publish_numbers(numbers: range) -> None:
        started = time.monotonic()
        for due, number in enumerate(numbers):
            delay = started + due * args.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                publisher.publish_message(str(number))
            except BrokerUnavailable as exc:
                print(f"failed {number} {exc}", flush=True)
            else:
                print(f"ok {number}", flush=True)

    print("ready", flush=True)
    publish_numbers(range(args.count))
    print("holding", flush=True)
    signal.sigwait({signal.SIGUSR1})
    publish_numbers(range(args.count, args.count + args.final))
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
