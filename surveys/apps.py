from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = "Accounts and surveys"

    def ready(self) -> None:
        from portal.metrics import metrics_register
        from surveys.reporting.metrics import survey_metrics

        metrics_register(survey_metrics)
