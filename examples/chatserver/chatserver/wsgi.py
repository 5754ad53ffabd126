"""The WSGI application; runserver serves it from Tornado's thread pool, next to the websockets."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings")

application = get_wsgi_application()
