from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.core.signals import request_finished
        from django_q.signals import post_execute_in_worker, pre_execute

        from portal import checks  # noqa: F401  (registers the system checks)
        from portal.heartbeat import cluster_metrics
        from portal.logging import request_context_end, task_context_end, task_context_start
        from portal.metrics import metrics_register

        post_migrate.connect(_ensure_schedules, sender=self)
        # A task's log lines say which task they are; a request's id stops at its end (portal.logging).
        request_finished.connect(request_context_end, dispatch_uid="portal.request_context_end")
        pre_execute.connect(task_context_start, dispatch_uid="portal.task_context_start")
        post_execute_in_worker.connect(task_context_end, dispatch_uid="portal.task_context_end")
        metrics_register(cluster_metrics)
        if settings.SENTRY_DSN:
            from portal.sentry import sentry_init

            sentry_init(settings.SENTRY_DSN, environment=settings.SENTRY_ENVIRONMENT)


def _ensure_schedules(sender: AppConfig, *, using: str = "default", **kwargs: Any) -> None:
    from portal.schedules import schedules_ensure

    schedules_ensure()
