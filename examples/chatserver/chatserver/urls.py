from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from chat import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="broadcast")),
    path("chat/", views.BroadcastChatView.as_view(), name="broadcast"),
    path("chat/user/", views.UserChatView.as_view(), name="user_chat"),
    path("chat/group/", views.GroupChatView.as_view(), name="group_chat"),
    path("chat/rooms/", views.RoomsChatView.as_view(), name="rooms"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
