"""django_bridge's pages: ``path("ws4redis/", include("django_bridge.urls"))`` in the project's URLconf."""

from __future__ import annotations

from django.urls import path

from .status import status

app_name = "django_bridge"
urlpatterns = [path("status/", status, name="status")]
