from django.contrib.staticfiles.views import serve
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("publish/", views.publish, name="publish"),
    # Only so that the example needs nothing else: a real deployment serves static files with
    # WhiteNoise or a web server, and HAProxy routes /static/ there.
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
