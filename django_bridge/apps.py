"""The Django app: connects the receivers and registers the system checks; no I/O."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoBridgeConfig(AppConfig):
    name = "django_bridge"
    verbose_name = "ws4redis (Tornado)"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.core.signals import setting_changed

        from . import checks, conf, receivers

        user_logged_in.connect(receivers.store_groups_in_session, dispatch_uid="django_bridge.memberof")
        setting_changed.connect(conf.on_setting_changed, dispatch_uid="django_bridge.conf")
        checks.register()
