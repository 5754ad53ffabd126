"""Django's database connections are closed at the end of each request served by the WSGI container.

Django closes a thread's connections when the response is closed (the request_finished signal);
the view runs in a worker thread, so that is where its response must be closed. Otherwise each
worker keeps a connection open, whatever CONN_MAX_AGE says, and Python 3.13 warns when it is
collected.
"""

from __future__ import annotations

import pytest

from . import views


@pytest.mark.gen_test
async def test_a_views_database_connection_is_closed_with_its_response(http_client, http_url, users):
    views.user_count_connections.clear()
    response = await http_client.fetch(http_url("/users/count/"))
    assert response.body == str(len(users)).encode()
    [connection] = views.user_count_connections
    assert connection.connection is None, "the worker thread's database connection is still open"
