"""``manage.py demo``: create the database, load the demo users, and run ``runserver``.

Takes runserver's arguments (``demo 0.0.0.0:8000``, ``--noreload`` ...). Under the autoreloader
the command runs again in each reloaded process, which skips the setup.
"""

import os

from django.core.management import call_command
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_bridge.management.commands.runserver import Command as RunserverCommand

FIXTURE = "chat"


class Command(RunserverCommand):
    help = "Set up the chat example (database, users admin, john and mary) and serve it with runserver."

    def handle(self, *args, **options):
        if os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
            call_command("migrate", interactive=False, verbosity=0)
            call_command("loaddata", FIXTURE, verbosity=0)
            self.stdout.write(
                "Demo users admin, john and mary (john and mary in group 'chatters'), password 'secret'.\n"
                "Open the chat at /chat/ on the address below; log in as two users in two browsers."
            )
        super().handle(*args, **options)
