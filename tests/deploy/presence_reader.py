"""Print who is present on a facility's broadcast channel, as a Django view of the deployment example reads it.

    python tests/deploy/presence_reader.py [--facility demo] [--every 0.05]

Run with the environment of the stack's runtornado processes, so that it reads the same settings
(Redis, prefix). Prints ``ready``, then one line per reading:
``<time.monotonic()> {"users": {...}, "anonymous": N}`` (the clock is the machine's, so the test
can compare it with its own), or ``<time> failed <error>`` when Redis could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facility", default="demo")
    parser.add_argument("--every", type=float, default=0.05)
    args = parser.parse_args()

    sys.path.insert(0, str(DEPLOY_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django_bridge.publisher import RedisPublisher
    from ws4redis_tornado.exceptions import BrokerUnavailable

    publisher = RedisPublisher(facility=args.facility, broadcast=True)
    print("ready", flush=True)
    while True:
        try:
            presence = publisher.presence()
        except BrokerUnavailable as exc:
            print(f"{time.monotonic()} failed {exc}", flush=True)
        else:
            reading = {"users": presence.users, "anonymous": presence.anonymous}
            print(f"{time.monotonic()} {json.dumps(reading, sort_keys=True)}", flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
