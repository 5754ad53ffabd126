"""The Django app: connects the receivers and registers the system checks; no I/O."""

from __future__ import annotations

from django.apps import AppConfig, apps


class DjangoBridgeConfig(AppConfig):
    name = "django_bridge"
    verbose_name = "ws4redis (Tornado)"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import checks, conf

        setting_changed.connect(conf.on_setting_changed, dispatch_uid="django_bridge.conf")
        checks.register()
        if apps.is_installed("django.contrib.auth"):
            connect_auth_receivers()


def connect_auth_receivers() -> None:
    """Store the groups at login; close the websockets whose session or rights change."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_in, user_logged_out
    from django.core.exceptions import FieldDoesNotExist
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

    from . import receivers

    user_logged_in.connect(receivers.store_groups_in_session, dispatch_uid="django_bridge.memberof")
    user_logged_out.connect(receivers.close_session_sockets, dispatch_uid="django_bridge.logout")
    user_model = get_user_model()
    post_save.connect(receivers.close_deactivated_user_sockets, sender=user_model, dispatch_uid="django_bridge.user")
    post_delete.connect(receivers.close_deleted_user_sockets, sender=user_model, dispatch_uid="django_bridge.user")
    try:
        groups = user_model._meta.get_field("groups")
    except FieldDoesNotExist:
        return  # a user model without groups
    if groups.many_to_many:
        through = groups.remote_field.through
        m2m_changed.connect(receivers.close_members_sockets, sender=through, dispatch_uid="django_bridge.groups")
        pre_delete.connect(
            receivers.close_group_members_sockets, sender=groups.related_model, dispatch_uid="django_bridge.group"
        )
