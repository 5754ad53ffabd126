"""The WSGI application; runserver serves it from Tornado's thread pool, next to the websockets."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings")


def strip_header_values(app):
    """Strip the blanks around response header values before they reach Tornado.

    Django writes each Set-Cookie value with a leading space (``cookie.output(header="")``), which
    WSGI servers tolerate but the WSGIContainer of recent Tornado releases (6.6 at least) refuses
    with an HTTPInputError, leaving the request unanswered: no login, no CSRF cookie. Remove this
    wrapper once django_bridge's server strips them itself.
    """

    def application(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [(name, value.strip()) for name, value in headers], exc_info)

        return app(environ, start)

    return application


application = strip_header_values(get_wsgi_application())
