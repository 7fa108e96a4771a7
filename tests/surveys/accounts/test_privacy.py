"""Personal data: the retention job, erase_customer, and Intercom's contact.deleted."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from portal.schedules import ERASE_EXPIRED_TASK
from surveys.accounts import privacy
from surveys.accounts.privacy import personal_data_erase_expired
from surveys.decisions.decision import CancelReason
from surveys.decisions.rules import Decision, InvalidReason
from surveys.delivery.survey_requests import survey_request_feedback_request
from surveys.loop.notes import intercom_notes_find
from surveys.models import Account, ApiRequest, ConversationEvent, DailyCount, Feedback, IntercomNote, SurveyRequest
from surveys.reporting.counts import count_survey_request_recorded
from tests.factories import AccountFactory, FeedbackFactory, SurveyRequestFactory
from tests.helpers import load_fixture, post_webhook, run_queued_tasks

pytestmark = pytest.mark.django_db

S = SurveyRequest.Status
ADA = "ada@customer.example"
BEA = "bea@customer.example"
BEA_CONTACT = "6a1f0c2e9b3d4e0012ab0201"  # conversation_admin_closed_v2's customer, whom contact_deleted deletes


def stored_webhook(*, email: str = ADA, days_old: int = 0, **fields) -> InboundWebhook:
    body = {"type": "notification_event", "data": {"item": {"user": {"name": "Ada Customer", "email": email}}}}
    webhook = InboundWebhook.objects.create(
        body=json.dumps(body),
        headers={"User-Agent": "intercom-parrot-service-client/1.0"},
        topic=fields.pop("topic", "conversation.admin.closed"),
        status=fields.pop("status", InboundWebhook.Status.PROCESSED),
        **fields,
    )
    InboundWebhook.objects.filter(pk=webhook.pk).update(received_at=timezone.now() - timedelta(days=days_old))
    return webhook


def sent_request(account: Account, *, days_old: int = 0, **fields) -> SurveyRequest:
    """A survey request sent to Stella `days_old` days ago: its webhook, its call and Stella's echo."""
    fields.setdefault("inbound_webhook", stored_webhook(email=fields.get("customer_email", ADA), days_old=days_old))
    survey_request = SurveyRequestFactory(account=account, sent=True, verdicts={"channel_disabled": None}, **fields)
    count_survey_request_recorded(survey_request)
    body = survey_request_feedback_request(survey_request, integration=survey_request.account.integration).as_json()
    ApiRequest.objects.create(
        survey_request=survey_request,
        account=survey_request.account,
        mode=survey_request.mode,
        url="https://api.stellaconnect.net/v1/requests",
        request_body=body,
        status_code=200,
        response_body=json.dumps(body),
        outcome=ApiRequest.Outcome.SENT,
    )
    SurveyRequest.objects.filter(pk=survey_request.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return survey_request


def counts() -> list[tuple]:
    return list(DailyCount.objects.order_by("account", "day", "kind").values_list("account", "day", "kind", "count"))


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# ---- The retention job ----


def test_retention_erases_customers_and_webhooks_kept_longer_than_the_setting(account):
    old = sent_request(account, days_old=91, status_detail=f"Stella said: {ADA} bounced before")
    old.api_requests.update(error_message=f"Invalid customer {ADA.upper()}")
    recent = sent_request(account, days_old=89)
    counted = counts()
    now = timezone.now()

    erased = personal_data_erase_expired(now=now)

    assert (erased.survey_requests, erased.api_requests, erased.webhooks) == (1, 1, 1)
    note = f"(erased {now:%Y-%m-%d}: personal data is kept 90 days)"
    old.refresh_from_db()
    assert (old.customer_name, old.customer_email, old.customer_id, old.erased_at) == ("", "", "", now)
    assert old.status_detail == "Stella said: [erased] bounced before"
    assert (old.status, old.decision, old.reason, old.verdicts) == (
        S.SENT,
        Decision.SEND,
        "",
        {"channel_disabled": None},
    )
    call = old.api_requests.get()
    assert call.request_body["customer"] == {"erased": note}
    assert call.request_body["employee"] == {"email": "tess@support.example"}
    assert (call.response_body, call.error_message) == (note, "Invalid customer [erased]")
    assert (call.outcome, call.status_code) == (ApiRequest.Outcome.SENT, 200)
    webhook = old.inbound_webhook
    webhook.refresh_from_db()
    assert (webhook.body, webhook.headers, webhook.erased_at) == (note, {}, now)
    assert (webhook.status, webhook.topic) == (InboundWebhook.Status.PROCESSED, "conversation.admin.closed")
    recent.refresh_from_db()
    assert (recent.customer_email, recent.erased_at) == (ADA, None)
    assert ADA in recent.inbound_webhook.body
    assert recent.api_requests.get().request_body["customer"] == {"name": "Ada Customer", "email": ADA}
    assert counts() == counted


def test_retention_leaves_requests_in_flight_and_webhooks_waiting_to_be_processed(account):
    waiting = sent_request(account, days_old=200, status=S.SCHEDULED, sent_at=None)
    sending = sent_request(account, days_old=200, status=S.SENDING, sent_at=None)
    received = stored_webhook(days_old=200, status=InboundWebhook.Status.RECEIVED)

    personal_data_erase_expired(now=timezone.now())

    for kept in (waiting, sending):
        kept.refresh_from_db()
        assert (kept.customer_email, kept.erased_at) == (ADA, None)
    received.refresh_from_db()
    assert ADA in received.body


def test_retention_follows_the_setting(account, settings):
    settings.PERSONAL_DATA_RETENTION_DAYS = 30
    old = sent_request(account, days_old=31)
    now = timezone.now()
    personal_data_erase_expired(now=now)
    old.inbound_webhook.refresh_from_db()
    assert old.inbound_webhook.body == f"(erased {now:%Y-%m-%d}: personal data is kept 30 days)"


def test_retention_works_in_batches_and_hands_what_is_left_to_a_fresh_task(account, monkeypatch):
    monkeypatch.setattr(privacy, "BATCH", 2)
    old = [sent_request(account, days_old=100) for _ in range(5)]

    assert personal_data_erase_expired(now=timezone.now(), seconds=0).total == 0
    assert run_queued_tasks() == [ERASE_EXPIRED_TASK]

    assert SurveyRequest.objects.filter(pk__in=[r.pk for r in old], erased_at__isnull=False).count() == 5
    assert InboundWebhook.objects.filter(erased_at__isnull=True).count() == 0
    assert personal_data_erase_expired(now=timezone.now()).total == 0  # nothing left: nothing walked twice


def test_retention_runs_daily_from_the_schedule_registry():
    schedule = Schedule.objects.get(func=ERASE_EXPIRED_TASK)
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 24 * 60)


# ---- erase_customer ----


def test_erase_customer_erases_one_person_everywhere_and_says_how_much(account):
    other_account = AccountFactory()
    sent = sent_request(account)
    same_contact = sent_request(account, customer_id=sent.customer_id, customer_email="", customer_name="")
    waiting = SurveyRequestFactory(account=account, customer_email=ADA, inbound_webhook=stored_webhook())
    elsewhere = sent_request(other_account)
    reopened = stored_webhook(topic="conversation.admin.opened")
    ConversationEvent.objects.create(
        account=account,
        conversation_id=sent.conversation_id,
        kind=ConversationEvent.Kind.REOPENED,
        occurred_at=timezone.now(),
        inbound_webhook=reopened,
    )
    ignored = stored_webhook(email=ADA.upper(), topic="conversation.admin.replied", status="ignored")
    bea = sent_request(account, customer_email=BEA, customer_name="Bea Buyer")

    output = run("erase_customer", "--email", " Ada@Customer.EXAMPLE ")

    assert output == (
        "Erased Ada@Customer.EXAMPLE: 4 survey requests (1 waiting one cancelled), 3 logged calls, "
        "0 Intercom notes, 6 webhooks.\n"
    )
    for erased in (sent, same_contact, waiting, elsewhere):
        erased.refresh_from_db()
        assert (erased.customer_email, erased.customer_name, erased.customer_id) == ("", "", "")
        assert erased.erased_at is not None
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == (S.CANCELLED, CancelReason.ERASED)
    assert not ApiRequest.objects.filter(request_body__customer__email=ADA).exists()
    for webhook in (reopened, ignored):
        webhook.refresh_from_db()
        assert webhook.body.endswith("the customer's personal data was erased on request)")
    bea.refresh_from_db()
    assert (bea.customer_email, bea.erased_at) == (BEA, None)
    assert BEA in bea.inbound_webhook.body


def test_erase_customer_linked_only_reads_no_webhook_bodies(account):
    sent = sent_request(account)
    unlinked = stored_webhook(topic="conversation.admin.replied", status="ignored")

    assert "1 webhook." in run("erase_customer", "--email", ADA, "--linked-only")

    sent.inbound_webhook.refresh_from_db()
    assert sent.inbound_webhook.erased_at is not None
    unlinked.refresh_from_db()
    assert (unlinked.erased_at, ADA in unlinked.body) == (None, True)


def test_erase_customer_warns_about_a_request_being_sent_meanwhile(account):
    sent_request(account, status=S.SENDING, sent_at=None)
    assert "1 request was being sent to Stella meanwhile" in run("erase_customer", "--email", ADA)


def test_erase_customer_wants_an_email():
    with pytest.raises(CommandError, match="is not an email address"):
        run("erase_customer", "--email", "Ada Customer")


# ---- Intercom's contact.deleted ----


def test_contact_deleted_reads_the_contact_id():
    notification = IntercomNotification.from_json(json.dumps(load_fixture("contact_deleted")))
    assert (notification.topic, notification.contact_id, notification.conversation) == (
        "contact.deleted",
        BEA_CONTACT,
        None,
    )


def test_contact_deleted_without_an_id_is_refused(client, account):
    payload = load_fixture("contact_deleted")
    del payload["data"]["item"]["id"]
    response = post_webhook(client, payload)
    assert (response.status_code, response.json()) == (400, {"error": "data.item.id is missing"})


def test_contact_deleted_erases_the_contact_and_then_the_notification_itself(client, account):
    closure_payload = load_fixture("conversation_admin_closed_v2")
    assert post_webhook(client, closure_payload).status_code == 200
    closure = SurveyRequest.objects.get(customer_id=BEA_CONTACT)
    assert (closure.status, closure.customer_email) == (S.SCHEDULED, BEA)
    earlier_contact = sent_request(
        account, customer_id="an-earlier-contact", customer_email=BEA, customer_name="Bea Buyer"
    )
    other_workspace = sent_request(AccountFactory(), customer_id=BEA_CONTACT, customer_email=BEA)

    assert post_webhook(client, load_fixture("contact_deleted")).status_code == 200

    deletion = InboundWebhook.objects.get(topic="contact.deleted")
    assert (deletion.status, deletion.error) == (InboundWebhook.Status.PROCESSED, "")
    assert deletion.body.endswith("the contact was deleted in Intercom)") and deletion.headers == {}
    assert BEA_CONTACT not in deletion.body
    closure.refresh_from_db()
    assert (closure.status, closure.reason) == (S.CANCELLED, CancelReason.ERASED)
    assert (closure.customer_email, closure.customer_name, closure.customer_id) == ("", "", "")
    assert closure.inbound_webhook is not None
    assert closure.inbound_webhook.erased_at is not None and BEA not in closure.inbound_webhook.body
    earlier_contact.refresh_from_db()
    assert (earlier_contact.customer_email, earlier_contact.status) == ("", S.SENT)
    other_workspace.refresh_from_db()
    assert (other_workspace.customer_email, other_workspace.erased_at) == (BEA, None)
    run_queued_tasks()  # the closure's send, queued before the deletion: it finds the request cancelled
    assert not ApiRequest.objects.filter(survey_request=closure).exists()


def test_contact_deleted_for_a_contact_never_surveyed_erases_only_itself(client, account):
    kept = sent_request(account)
    assert post_webhook(client, load_fixture("contact_deleted")).status_code == 200
    assert InboundWebhook.objects.get(topic="contact.deleted").erased_at is not None
    kept.refresh_from_db()
    assert kept.customer_email == ADA and kept.inbound_webhook.erased_at is None


def test_an_invalid_request_erased_stays_invalid_when_resent(account):
    """Erasure clears the contact id too, so nothing can look the person up again."""
    invalid = sent_request(account, status=S.INVALID, decision=Decision.INVALID, reason=InvalidReason.INVALID_CUSTOMER)
    run("erase_customer", "--email", ADA)
    invalid.refresh_from_db()
    assert not invalid.needs_lookup


# ---- Stella's feedback records ----


def feedback_of(account: Account, survey_request: SurveyRequest | None, *, email: str = ADA, days_old: int = 0):
    raw = {
        "uuid": f"u-{len(email)}-{days_old}",
        "customer": {"email": email, "full_name": "Ada Customer"},
        "answers": {"agent_star_rating": {"comment": f"Thanks! Write to {email}", "selected_options": {}}},
    }
    record = FeedbackFactory(
        account=account, survey_request=survey_request, raw=raw, star_rating=5, comment=f"Thanks! Write to {email}"
    )
    Feedback.objects.filter(pk=record.pk).update(first_seen_at=timezone.now() - timedelta(days=days_old))
    return record


def test_erasing_a_customer_erases_stellas_records_of_them_linked_or_not(account):
    linked = feedback_of(account, sent_request(account))
    unlinked = feedback_of(account, None)  # a conversation the portal never surveyed
    someone_else = feedback_of(account, None, email=BEA)
    privacy.customer_erase(email=ADA.upper(), now=timezone.now())
    for record in (linked, unlinked):
        record.refresh_from_db()
        assert ADA not in json.dumps(record.raw) and record.comment == ""
        assert record.star_rating == 5  # the rating is no one's personal data: the counts keep it
    someone_else.refresh_from_db()
    assert BEA in json.dumps(someone_else.raw)


def test_retention_erases_stellas_records_with_their_request_or_when_kept_too_long_unlinked(account):
    old = feedback_of(account, sent_request(account, days_old=91))
    old_unlinked = feedback_of(account, None, email=BEA, days_old=91)
    recent_unlinked = feedback_of(account, None, email=BEA, days_old=10)
    personal_data_erase_expired(now=timezone.now())
    for record in (old, old_unlinked):
        record.refresh_from_db()
        assert ADA not in json.dumps(record.raw) and BEA not in json.dumps(record.raw) and not record.comment
    recent_unlinked.refresh_from_db()
    assert BEA in recent_unlinked.comment


# ---- Intercom notes ----


@pytest.mark.parametrize("erasure", ["on request", "contact.deleted", "retention"])
def test_erasure_removes_the_comment_an_intercom_note_quotes(client, account, erasure):
    assert post_webhook(client, load_fixture("conversation_admin_closed_v2")).status_code == 200
    survey_request = SurveyRequest.objects.get(customer_id=BEA_CONTACT)
    SurveyRequest.objects.filter(pk=survey_request.pk).update(status=S.SENT, sent_at=timezone.now())
    comment = "Bea here: the courier left my parcel in the rain"
    FeedbackFactory(
        account=account, survey_request=survey_request, comment=comment, response_received_at=timezone.now()
    )
    assert intercom_notes_find(account, now=timezone.now() + timedelta(minutes=2)) == 2
    assert IntercomNote.objects.filter(body__contains="the courier left my parcel").count() == 1

    if erasure == "on request":
        privacy.customer_erase(email=BEA, now=timezone.now())
    elif erasure == "contact.deleted":
        assert post_webhook(client, load_fixture("contact_deleted")).status_code == 200
    else:
        personal_data_erase_expired(now=timezone.now() + timedelta(days=91))

    assert not IntercomNote.objects.filter(body__contains="courier").exists()
    assert not IntercomNote.objects.filter(status=IntercomNote.Status.WAITING).exists()  # never posted now
