from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Intercom webhooks"

    def ready(self) -> None:
        from integrations.metrics import webhook_metrics
        from portal.metrics import metrics_register

        metrics_register(webhook_metrics)
