"""The WSGI application runtornado serves (``WSGI_APPLICATION``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def strip_header_values(app):
    """Strip the blanks around response header values before they reach Tornado.

    Django writes each Set-Cookie value with a leading space (``cookie.output(header="")``). WSGI
    servers tolerate it; the WSGIContainer of Tornado 6.5 and later raises instead and leaves the
    request unanswered, so every response that sets a cookie (here the CSRF one) would hang until
    HAProxy's ``timeout server``. Remove this wrapper once django_bridge's server strips them itself.
    """

    def application(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [(name, value.strip()) for name, value in headers], exc_info)

        return app(environ, start)

    return application


application = strip_header_values(get_wsgi_application())
