import html
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from surveys.models import ApiRequest, IntegrationHealth
from surveys.reporting.alerts import accounts_check_error_rates
from tests.factories import SurveyRequestFactory

pytestmark = pytest.mark.django_db
O = ApiRequest.Outcome  # noqa: E741


def calls(account, *, good, bad, ago=timedelta(minutes=5)):
    survey_request = SurveyRequestFactory(account=account)
    for outcome, n in ((O.SENT, good), (O.INVALID, bad)):
        for _ in range(n):
            row = ApiRequest.objects.create(
                survey_request=survey_request, account=account, mode="test", outcome=outcome
            )
            ApiRequest.objects.filter(pk=row.pk).update(created_at=timezone.now() - ago)


@pytest.fixture
def watched(account):
    account.integration.alert_recipients = "csm@stella.example, ops@customer.example"
    account.integration.save()
    return account


def health_of(account) -> IntegrationHealth:
    return IntegrationHealth.objects.get(account=account)


def test_more_than_five_percent_failing_raises_the_alert_and_emails_once(watched):
    calls(watched, good=90, bad=10)
    now = timezone.now()
    assert [s.account for s in accounts_check_error_rates(now=now)] == [watched]
    assert (health_of(watched).error_alert_since, health_of(watched).error_alert_rate) == (now, 10.0)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["csm@stella.example", "ops@customer.example"]
    assert "10% of" in mail.outbox[0].subject

    accounts_check_error_rates(now=now + timedelta(minutes=30))
    assert len(mail.outbox) == 1  # at most once an hour
    calls(watched, good=90, bad=10, ago=-timedelta(minutes=58))  # still failing an hour later
    accounts_check_error_rates(now=now + timedelta(minutes=61))
    assert len(mail.outbox) == 2
    assert health_of(watched).error_alert_since == now  # still the same episode


@pytest.mark.parametrize(
    ("good", "bad"),
    [(96, 4), (2, 1)],  # at or below 5%; too few requests to mean anything
)
def test_no_alert_below_the_threshold_or_the_volume(watched, good, bad):
    calls(watched, good=good, bad=bad)
    assert accounts_check_error_rates(now=timezone.now()) == []
    assert mail.outbox == []


def test_requests_older_than_an_hour_dont_count(watched):
    calls(watched, good=0, bad=30, ago=timedelta(minutes=70))
    assert accounts_check_error_rates(now=timezone.now()) == []


def test_alert_clears_once_the_rate_falls(watched):
    calls(watched, good=10, bad=10)
    accounts_check_error_rates(now=timezone.now())
    ApiRequest.objects.filter(outcome=O.INVALID).update(created_at=timezone.now() - timedelta(hours=2))
    calls(watched, good=40, bad=0)
    accounts_check_error_rates(now=timezone.now())
    assert health_of(watched).error_alert_since is None


def test_alert_shows_on_the_account_admin(admin_client, watched):
    calls(watched, good=10, bad=10)
    accounts_check_error_rates(now=timezone.now())
    # In the status page's words (surveys/reporting/attention.py), on the list and the account's page alike.
    said = f"Over 5% of {watched.name}'s requests in the last hour were invalid or failed"
    assert said in html.unescape(admin_client.get(reverse("admin:surveys_account_changelist")).content.decode())
    assert said in html.unescape(
        admin_client.get(reverse("admin:surveys_account_change", args=[watched.pk])).content.decode()
    )
