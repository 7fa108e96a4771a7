"""The status page's daily counts, kept as things change, against the same counts rebuilt from the log,
after every path that moves a request or records a call."""

import time
from datetime import date, timedelta

import pytest
import requests
import responses
from django.utils import timezone

from sandbox.samples import closed_conversation, reopened_conversation
from surveys.delivery.sending import survey_request_send, survey_requests_recover_stale
from surveys.delivery.survey_requests import survey_requests_resend
from surveys.models import ApiRequest, CallCount, DailyCount, SurveyOutcome, SurveyRequest
from surveys.reporting.counts import daily_count_add, daily_counts_move, daily_counts_rebuild
from tests.factories import AccountFactory
from tests.helpers import WORKSPACE_ID, post_webhook

pytestmark = pytest.mark.django_db
S = SurveyRequest.Status


def kept() -> list[tuple]:
    return sorted(DailyCount.objects.filter(count__gt=0).values_list("account_id", "day", "kind", "count"))


def close(client, conversation_id: str, **kwargs) -> SurveyRequest:
    at = kwargs.pop("at", int(time.time()))
    post_webhook(client, closed_conversation(app_id=WORKSPACE_ID, conversation_id=conversation_id, at=at, **kwargs))
    return SurveyRequest.objects.get(conversation_id=conversation_id)


def send(survey_request: SurveyRequest) -> SurveyRequest:
    survey_request.refresh_from_db()
    return survey_request_send(survey_request.pk, now=max(survey_request.send_after, timezone.now()))


def test_one_statement_creates_adds_to_or_moves_a_count(account, django_assert_num_queries):
    day, other_account = date(2025, 11, 28), AccountFactory()
    daily_count_add(account_id=other_account.pk, day=day, kind=SurveyOutcome.WAITING)
    daily_count_add(account_id=account.pk, day=day + timedelta(days=1), kind=SurveyOutcome.WAITING)

    def add(kind: str, delta: int = 1) -> None:
        daily_count_add(account_id=account.pk, day=day, kind=kind, delta=delta)

    def move(old: str, new: str) -> None:
        daily_counts_move(account_id=account.pk, day=day, old=old, new=new)

    for change in (
        lambda: add(SurveyOutcome.WAITING),  # created
        lambda: add(SurveyOutcome.WAITING, 2),  # added to
        lambda: move(SurveyOutcome.WAITING, SurveyOutcome.SENT),  # to a kind with no count yet
        lambda: move(SurveyOutcome.WAITING, SurveyOutcome.SENT),  # between two counts
        lambda: move(SurveyOutcome.WAITING, SurveyOutcome.INVALID),
        lambda: add(CallCount.INVALID_CALLS),
    ):
        with django_assert_num_queries(1):
            change()
    with django_assert_num_queries(0):
        move(SurveyOutcome.SENT, SurveyOutcome.SENT)

    assert dict(DailyCount.objects.filter(account=account, day=day).values_list("kind", "count")) == {
        SurveyOutcome.WAITING: 0, SurveyOutcome.SENT: 2, SurveyOutcome.INVALID: 1, CallCount.INVALID_CALLS: 1,
    }  # fmt: skip
    assert sorted(DailyCount.objects.exclude(account=account, day=day).values_list("account_id", "day", "count")) == [
        (account.pk, day + timedelta(days=1), 1),
        (other_account.pk, day, 1),
    ]


@responses.activate
def test_counts_kept_as_requests_move_equal_counts_rebuilt_from_the_log(client, account, settings):
    stella = f"{settings.STELLA_API_URL}/v1/requests"
    # In order: sent; flagged; 503 then sent; 400 then resent and sent; a timeout (ambiguous), resent.
    for answer in (
        {"json": {}}, {"json": {}}, {"status": 503}, {"json": {}}, {"status": 400, "json": {"message": "Employee not found"}},
        {"json": {}}, {"body": requests.ReadTimeout()}, {"json": {}},
    ):  # fmt: skip
        responses.post(stella, **answer)

    send(close(client, "c1"))
    send(close(client, "c2", bot=True))
    retried = close(client, "c3")
    send(retried)
    assert SurveyRequest.objects.get(pk=retried.pk).status == S.SCHEDULED
    send(retried)
    refused = close(client, "c4")
    send(refused)
    survey_requests_resend([SurveyRequest.objects.get(pk=refused.pk)], by="csm")
    send(refused)
    lost = close(client, "c5")
    send(lost)
    assert SurveyRequest.objects.get(pk=lost.pk).status == S.AMBIGUOUS
    survey_requests_resend([SurveyRequest.objects.get(pk=lost.pk)], by="csm")
    send(lost)

    account.integration.chat_enabled = False
    account.integration.save()
    close(client, "c6")  # invalid at intake
    account.integration.chat_enabled = True
    account.integration.channel_delay = timedelta(minutes=10)
    account.integration.suppression_window = timedelta(days=7)
    account.integration.save()
    now = int(time.time())
    close(client, "c7", at=now, customer=("k7", "Kay", "kay@customer.example"))
    post_webhook(client, reopened_conversation(app_id=WORKSPACE_ID, conversation_id="c7", at=now + 5))  # cancelled
    close(client, "c8", at=now, customer=("k8", "Lee", "lee@customer.example"))  # waiting out the delay
    close(client, "c9", at=now, customer=("k8", "Lee", "lee@customer.example"))  # suppressed by the window
    dying = close(client, "c10", at=now - 900, customer=("k10", "Max", "max@customer.example"))
    # A sender died holding it (sending counts as waiting too), and the sweep takes it back.
    SurveyRequest.objects.filter(pk=dying.pk).update(status=S.SENDING, claimed_at=timezone.now() - timedelta(hours=1))
    survey_requests_recover_stale(now=timezone.now())

    statuses = dict(SurveyRequest.objects.values_list("conversation_id", "status"))
    assert statuses == {
        "c1": S.SENT, "c2": S.SENT, "c3": S.SENT, "c4": S.SENT, "c5": S.SENT, "c6": S.INVALID,
        "c7": S.CANCELLED, "c8": S.SCHEDULED, "c9": S.SUPPRESSED, "c10": S.SCHEDULED,
    }  # fmt: skip
    assert ApiRequest.objects.filter(outcome="invalid").count() == 2  # c4's 400, c6 at intake
    before = kept()
    daily_counts_rebuild()
    assert before == kept()


def test_a_moment_counts_on_the_portals_day_whatever_zone_the_user_reads_in():
    from datetime import UTC, date, datetime

    from django.utils import timezone

    from surveys.reporting.counts import day_of

    evening = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)  # already the 30th in Auckland
    with timezone.override("Pacific/Auckland"):
        assert day_of(evening) == date(2026, 11, 29)
