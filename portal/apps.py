from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from portal import checks  # noqa: F401  (registers the system checks)

        post_migrate.connect(_ensure_schedules, sender=self)


def _ensure_schedules(sender: AppConfig, *, using: str = "default", **kwargs: Any) -> None:
    from portal.schedules import schedules_ensure

    schedules_ensure()
