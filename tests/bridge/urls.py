from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("whoami/", views.whoami),
    path("notify/<str:username>/", views.notify),
    path("users/count/", views.user_count),
    path("slow/", views.slow),
    path("heartbeat.js", views.heartbeat_js),
    path("cookie/", views.set_cookie),
    path("odd-header/", views.control_character_header),
    path("broken-stream/", views.broken_stream),
    path("wrong-length/", views.wrong_length),
    path("ws4redis/", include("django_bridge.urls")),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/hello/")),
]
