"""A send that raises what nobody expected: django-q2 keeps the failed task, traceback and all, and the survey
request's admin page shows it, escaped."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure, Task

from portal.schedules import send_task_name
from surveys.delivery import sending
from surveys.delivery.survey_requests import survey_requests_queue
from surveys.models import SurveyRequest
from tests.factories import SurveyRequestFactory
from tests.helpers import run_queued_tasks_through_django_q

pytestmark = pytest.mark.django_db


def page(admin_client, survey_request) -> str:
    return admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk])).content.decode()


def failed_task(survey_request, *, result: str, minutes_ago: int = 0) -> Task:
    stopped = timezone.now() - timedelta(minutes=minutes_ago)
    return Task.objects.create(
        id=f"{survey_request.pk:08d}{minutes_ago:024d}",
        name=send_task_name(survey_request.pk),
        func="surveys.tasks.send_survey_request",
        args=(survey_request.pk,),
        started=stopped,
        stopped=stopped,
        result=result,
        success=False,
    )


def test_a_send_that_raises_leaves_its_traceback_on_the_request_page_escaped(admin_client, account, monkeypatch):
    due = SurveyRequestFactory(account=account)
    other = SurveyRequestFactory(account=account)

    def build_the_request(survey_request, **kwargs):
        raise ValueError(f"<img src=x onerror=alert(1)> for request {survey_request.pk}")

    monkeypatch.setattr(sending, "survey_request_feedback_request", build_the_request)
    survey_requests_queue([due.pk])
    # Taken off the broker in use (the database's queue table, or Redis) and run as the cluster runs it.
    assert run_queued_tasks_through_django_q() == 1

    failure = Failure.objects.get()
    assert (failure.name, failure.func) == (send_task_name(due.pk), "surveys.tasks.send_survey_request")
    assert "Traceback (most recent call last):" in failure.result and "in build_the_request" in failure.result
    due.refresh_from_db()
    assert due.status == SurveyRequest.Status.SCHEDULED  # it raised before its claim: the sweep queues it again
    shown = page(admin_client, due)
    assert "1 failed send task, newest first" in shown
    assert '<pre class="traceback">' in shown and "in build_the_request" in shown
    assert f"&lt;img src=x onerror=alert(1)&gt; for request {due.pk}" in shown
    assert "<img src=x" not in shown
    assert reverse("admin:django_q_failure_change", args=[failure.pk]) in shown
    assert "Sender failures" in page(admin_client, other) and "failed send task" not in page(admin_client, other)


def test_the_request_page_shows_the_newest_failures_and_counts_them_all(admin_client, account):
    survey_request = SurveyRequestFactory(account=account)
    for minutes_ago in range(4):
        failed_task(
            survey_request, result=f"RuntimeError: failure from {minutes_ago} minutes ago", minutes_ago=minutes_ago
        )
    failed_task(SurveyRequestFactory(account=account), result="RuntimeError: another request's failure")

    shown = page(admin_client, survey_request)

    assert "4 failed send tasks, newest first" in shown
    assert [f"from {n} minutes ago" in shown for n in range(4)] == [True, True, True, False]
    assert "another request" not in shown
    assert reverse("admin:django_q_failure_changelist") + "?q=send+survey+request+" in shown
