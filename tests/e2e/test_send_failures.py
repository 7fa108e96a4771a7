"""A real django-q2 cluster runs a send that raises what nobody expected: the failure, traceback and all, is kept in
the database whichever broker carried the task (run with Q_REDIS_URL set for Redis), and the survey request's admin
page shows it."""

import signal
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure, OrmQ

from portal.schedules import send_task_name
from surveys.delivery.survey_requests import survey_requests_queue
from surveys.models import IntegrationHealth, SurveyRequest
from tests.e2e.test_cluster_faults import CLUSTER, start_cluster, stop
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import queued_tasks, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_send_that_raises_in_the_cluster_is_kept_with_its_traceback_for_the_request_page(live_server, admin_client):
    account = AccountFactory()
    past = timezone.now() - timedelta(minutes=1)
    survey_request = SurveyRequestFactory(account=account, closed_at=past, send_after=past)
    # A fault in the data, not in the code: the account's health row is gone, which the sender doesn't expect.
    IntegrationHealth.objects.filter(account=account).delete()
    survey_requests_queue([survey_request.pk])
    assert len(queued_tasks()) == 1
    assert OrmQ.objects.exists() != bool(settings.Q_CLUSTER.get("redis"))  # on the broker this run is set up for

    cluster = start_cluster(f"{live_server.url}/sandbox/stella", settings={**CLUSTER, "Q_WORKERS": "1"})
    try:
        wait_until(
            Failure.objects.filter(name=send_task_name(survey_request.pk)).exists,
            timeout=60,
            message="the cluster never kept the send's failure",
            interval=0.2,
        )
    finally:
        stop(cluster, signal.SIGTERM)

    failure = Failure.objects.get()
    assert "Traceback (most recent call last):" in failure.result and "RelatedObjectDoesNotExist" in failure.result
    assert SurveyRequest.objects.get().status == SurveyRequest.Status.SCHEDULED
    page = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk])).content.decode()
    assert "1 failed send task," in page
    assert "RelatedObjectDoesNotExist" in page and "Account has no health." in page
