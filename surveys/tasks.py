"""django-q2 entry points for sending: a few lines each, no rules. Schedules and queued
tasks name these by dotted path, so a rename needs a data migration for Schedule.func."""

from django.utils import timezone

from surveys.alerts import accounts_check_error_rates
from surveys.sending import survey_request_send, survey_requests_send_due


def send_survey_request(survey_request_id: int) -> str:
    return survey_request_send(survey_request_id, now=timezone.now()).status


def send_due_survey_requests() -> int:
    return survey_requests_send_due(now=timezone.now())


def check_error_rates() -> int:
    return len(accounts_check_error_rates(now=timezone.now()))
