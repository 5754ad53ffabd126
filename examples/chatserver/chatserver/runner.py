"""The chat example's test runner: Django's, finding the project's tests wherever manage.py runs from."""

from pathlib import Path

from django.test.runner import DiscoverRunner

PROJECT_DIR = Path(__file__).resolve().parent.parent


class ProjectTestRunner(DiscoverRunner):
    """Without test labels, look in this project instead of the current directory.

    So ``python examples/chatserver/manage.py test`` from the repository root runs the chat
    tests, not whatever else a walk from the root would find.
    """

    def build_suite(self, test_labels=None, **kwargs):
        return super().build_suite(test_labels or [str(PROJECT_DIR)], **kwargs)
