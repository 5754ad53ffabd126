"""Minimal Django project serving django-websocket-redis 0.6.0 on uWSGI + gevent."""
