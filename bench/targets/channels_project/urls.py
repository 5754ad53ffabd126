"""No plain HTTP views: the benchmark only talks to the websocket endpoint."""

urlpatterns: list = []
