from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("whoami/", views.whoami),
    path("slow/", views.slow),
    path("heartbeat.js", views.heartbeat_js),
]
