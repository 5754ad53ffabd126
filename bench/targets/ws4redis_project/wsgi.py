"""uWSGI entry point, as in ws4redis' docs, with shim 2: a select that scales past fd 1023.

ws4redis' uWSGI server waits with ``gevent.select.select``, which first polls with the real
``select()`` and so raises ``ValueError: filedescriptor out of range`` for any fd >= 1024:
in one worker, every websocket beyond roughly the 500th (two fds each) dies at once.
``SelectResult.select`` is the watcher-based half of that same gevent function, without the
``select()`` pre-check.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.targets.ws4redis_project.settings")

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from gevent.select import SelectResult
from ws4redis.uwsgi_runserver import uWSGIWebsocketServer


class WatcherSelectServer(uWSGIWebsocketServer):
    def select(self, rlist, wlist, xlist, timeout=None):
        return SelectResult().select(rlist, wlist, timeout)


_django_app = get_wsgi_application()
# BENCH_WS4REDIS_STOCK_SELECT=1 runs ws4redis' own select, to reproduce the failure.
_stock = os.environ.get("BENCH_WS4REDIS_STOCK_SELECT") == "1"
_websocket_app = uWSGIWebsocketServer() if _stock else WatcherSelectServer()


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(settings.WEBSOCKET_URL):
        return _websocket_app(environ, start_response)
    return _django_app(environ, start_response)
