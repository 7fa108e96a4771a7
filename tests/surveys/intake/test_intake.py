"""What the intake decides for each closed conversation, end to end through the webhook."""

import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from integrations.models import InboundWebhook
from portal.queue import TaskBatch
from portal.schedules import PROCESS_WEBHOOKS_TASK
from surveys.decisions.rules import Decision, DoNotSendReason, InvalidReason, SuppressionReason
from surveys.intake import process as intake
from surveys.intake.claim import DRAIN_SLOT_LOCKS, inbound_webhooks_claim
from surveys.models import ConversationEvent, DailyCount, SurveyRequest
from surveys.reporting.counts import daily_counts_rebuild
from surveys.tasks import process_inbound_webhooks
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import load_fixture, notification, post_webhook, queued_tasks, queued_tasks_purge

pytestmark = pytest.mark.django_db

CLOSED_AT = datetime(2025, 11, 28, 10, 0, 1, tzinfo=UTC)  # the closed fixtures' created_at
S = SurveyRequest.Status


def close(client, name="conversation_admin_closed", **item_fields) -> SurveyRequest:
    payload = load_fixture(name)
    payload["data"]["item"].update(item_fields)
    assert post_webhook(client, payload).status_code == 200
    return SurveyRequest.objects.get(inbound_webhook__notification_id=payload["id"])


def event(client, name, *, at: datetime, **envelope) -> None:
    payload = notification(name, created_at=int(at.timestamp()), **envelope)
    assert post_webhook(client, payload).status_code == 200


def close_again(client, *, after: timedelta, part_id: str) -> SurveyRequest:
    """The same conversation closed again `after` the first close, as its own closure."""
    payload = notification(
        "conversation_admin_closed", id=f"notif_close_{part_id}", created_at=int((CLOSED_AT + after).timestamp())
    )
    payload["data"]["item"]["conversation_parts"]["conversation_parts"][0]["id"] = part_id
    assert post_webhook(client, payload).status_code == 200
    return SurveyRequest.objects.get(closure_id=part_id)


def configure(account, **fields) -> None:
    for field, value in fields.items():
        setattr(account.integration, field, value)
    account.integration.save()


def test_older_shape_closure_records_everything_the_sender_needs(client, account):
    survey_request = close(client)
    assert survey_request.account == account
    assert (survey_request.status, survey_request.decision, survey_request.reason) == (S.SCHEDULED, Decision.SEND, "")
    assert survey_request.conversation_id == "30100000001"
    assert survey_request.conversation_url == "https://app.intercom.com/a/apps/ws1test/conversations/30100000001"
    assert survey_request.closure_id == "7100000001"
    assert survey_request.closed_at == CLOSED_AT
    assert survey_request.send_after == CLOSED_AT
    assert survey_request.channel == ""  # the older shape doesn't say: looked up before sending
    assert survey_request.needs_lookup
    assert (survey_request.customer_name, survey_request.customer_email, survey_request.customer_role) == (
        "Ada Customer",
        "ada@customer.example",
        "user",
    )
    assert (survey_request.teammate_id, survey_request.teammate_name, survey_request.teammate_email) == (
        "4100001",
        "Tess Teammate",
        "tess@support.example",
    )
    assert survey_request.mode == "test"
    assert set(survey_request.verdicts.values()) == {None}


def test_newer_shape_chat_closure(client, account):
    survey_request = close(client, "conversation_admin_closed_v2")
    assert (survey_request.channel, survey_request.channel_source) == ("chat", "conversation")
    assert survey_request.status == S.SCHEDULED
    assert not survey_request.needs_lookup


def test_email_closure_keeps_the_teammate_email_to_be_looked_up(client, account):
    survey_request = close(client, "conversation_admin_closed_email_v2")
    assert survey_request.channel == "email"
    assert (survey_request.teammate_id, survey_request.teammate_name, survey_request.teammate_email) == (
        "4100003",
        "Ines Inbox",
        "",
    )
    assert survey_request.needs_lookup
    assert survey_request.status == S.SCHEDULED


def test_bot_closure_is_sent_flagged_do_not_send(client, account):
    survey_request = close(client, "conversation_admin_closed_bot_v2")
    assert (survey_request.status, survey_request.decision, survey_request.reason) == (
        S.SCHEDULED,
        Decision.DO_NOT_SEND,
        DoNotSendReason.BOT_ASSIGNEE,
    )
    assert survey_request.do_not_send
    assert survey_request.verdicts["assignee_is_bot"] == "bot_assignee"


def test_channel_delay_sets_send_after(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    assert close(client).send_after == CLOSED_AT + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("account_settings", "item", "reason", "message"),
    [
        ({"chat_enabled": False}, {}, InvalidReason.CHANNEL_DISABLED, "Channel not enabled for company"),
        (
            {},
            {"source": {**load_fixture("conversation_admin_closed_v2")["data"]["item"]["source"], "type": "whatsapp"}},
            InvalidReason.CHANNEL_UNSUPPORTED,
            "Channel not enabled for company",
        ),
        ({}, {"admin_assignee_id": None}, InvalidReason.EMPLOYEE_NOT_FOUND, "Employee not found"),
        (
            {},
            {
                "source": {
                    **load_fixture("conversation_admin_closed_v2")["data"]["item"]["source"],
                    "author": {"type": "lead", "id": "6a1f0c2e9b3d4e0012ab0201", "name": None, "email": "bea@"},
                }
            },
            InvalidReason.INVALID_CUSTOMER,
            "Invalid customer",
        ),
    ],
)
def test_invalid_closures_are_recorded_in_stellas_words(client, account, account_settings, item, reason, message):
    configure(account, **account_settings)
    survey_request = close(client, "conversation_admin_closed_v2", **item)
    assert (survey_request.status, survey_request.decision, survey_request.reason, survey_request.status_detail) == (
        S.INVALID,
        Decision.INVALID,
        reason,
        message,
    )


def test_customer_nobody_can_look_up_is_invalid(client, account):
    user = {**load_fixture("conversation_admin_closed")["data"]["item"]["user"], "email": "", "id": None}
    survey_request = close(client, user=user)
    assert (survey_request.status, survey_request.status_detail) == (S.INVALID, "Invalid customer")


def test_customer_without_email_in_the_payload_is_looked_up_before_deciding(client, account):
    user = {**load_fixture("conversation_admin_closed")["data"]["item"]["user"], "email": ""}
    survey_request = close(client, user=user)
    assert survey_request.status == S.SCHEDULED
    assert survey_request.verdicts["customer_email_missing"] is None
    assert survey_request.needs_lookup


def test_conversation_tag_on_close_is_do_not_send(client, account):
    survey_request = close(client, tags={"type": "tag.list", "tags": [{"type": "tag", "id": "1", "name": "Dupe"}]})
    assert (survey_request.decision, survey_request.reason) == (Decision.DO_NOT_SEND, DoNotSendReason.SUPPRESSED_TAG)
    assert survey_request.tags == ["Dupe"]


def test_account_chooses_its_own_do_not_send_tags(client, account):
    configure(account, do_not_send_tags="spam, test-conversation")
    tags = {"type": "tag.list", "tags": [{"type": "tag", "id": "1", "name": "fraud"}]}
    assert close(client, tags=tags).decision == Decision.SEND


def test_customer_surveyed_within_the_window_is_suppressed(client, account):
    configure(account, suppression_window=timedelta(days=7))
    SurveyRequestFactory(account=account, sent=True, closed_at=CLOSED_AT - timedelta(days=2))
    survey_request = close(client)
    assert (survey_request.status, survey_request.reason) == (S.SUPPRESSED, SuppressionReason.SUPPRESSION_WINDOW)


@pytest.mark.parametrize(
    "earlier",
    [
        {"sent": True, "closed_at": CLOSED_AT - timedelta(days=2)},  # outside a 1-day window
        {"status": S.CANCELLED, "closed_at": CLOSED_AT - timedelta(hours=1)},
        {"sent": True, "decision": Decision.DO_NOT_SEND, "closed_at": CLOSED_AT - timedelta(hours=1)},
        {"sent": True, "customer_email": "someone@else.example", "closed_at": CLOSED_AT - timedelta(hours=1)},
    ],
)
def test_only_a_real_recent_survey_of_the_same_customer_suppresses(client, account, earlier):
    configure(account, suppression_window=timedelta(days=1))
    SurveyRequestFactory(account=account, **earlier)
    assert close(client).status == S.SCHEDULED


def test_survey_in_another_account_does_not_suppress(client, account):
    configure(account, suppression_window=timedelta(days=7))
    SurveyRequestFactory(account=AccountFactory(), sent=True, closed_at=CLOSED_AT - timedelta(hours=1))
    assert close(client).status == S.SCHEDULED


def test_conversation_already_surveyed_is_not_surveyed_again(client, account):
    SurveyRequestFactory(
        account=account, conversation_id="30100000001", sent=True, closed_at=CLOSED_AT - timedelta(days=1)
    )
    survey_request = close(client)
    assert (survey_request.status, survey_request.reason) == (S.SUPPRESSED, SuppressionReason.ALREADY_SURVEYED)


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("conversation_admin_opened", "Reopened during the channel delay"),
        ("conversation_user_replied", "Customer replied during the channel delay"),
        ("conversation_admin_snoozed", "Snoozed during the channel delay"),
    ],
)
def test_event_during_the_delay_cancels_the_waiting_send(client, account, name, detail):
    configure(account, channel_delay=timedelta(minutes=10))
    survey_request = close(client)
    event(client, name, at=CLOSED_AT + timedelta(minutes=3))
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.get_reason_display()) == (S.CANCELLED, detail)
    assert ConversationEvent.objects.get().conversation_id == "30100000001"


def test_deletion_during_the_delay_cancels(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    survey_request = close(client, "conversation_admin_closed_v2")
    event(client, "conversation_deleted", at=CLOSED_AT + timedelta(minutes=3))
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.reason, survey_request.get_reason_display()) == (
        S.CANCELLED,
        "deleted",
        "Conversation deleted during the channel delay",
    )


def test_reopen_after_the_delay_does_not_cancel(client, account):
    configure(account, channel_delay=timedelta(minutes=2))
    survey_request = close(client)
    event(client, "conversation_admin_opened", at=CLOSED_AT + timedelta(minutes=5))
    survey_request.refresh_from_db()
    assert survey_request.status == S.SCHEDULED


def test_reopen_that_arrives_before_its_close_still_cancels(client, account):
    """Intercom doesn't promise order: the envelope's created_at does."""
    configure(account, channel_delay=timedelta(minutes=10))
    event(client, "conversation_admin_opened", at=CLOSED_AT + timedelta(minutes=3))
    survey_request = close(client)
    assert (survey_request.status, survey_request.reason) == (S.CANCELLED, "reopened")


def test_reopen_from_before_the_close_does_not_cancel(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    event(client, "conversation_admin_opened", at=CLOSED_AT - timedelta(minutes=3))
    assert close(client).status == S.SCHEDULED


def test_close_reopen_close_within_the_delay_leaves_one_waiting_send(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    first = close(client)
    event(client, "conversation_admin_opened", at=CLOSED_AT + timedelta(minutes=3))
    second = close_again(client, after=timedelta(minutes=6), part_id="7100000009")
    first.refresh_from_db()
    assert first.status == S.CANCELLED
    assert (second.status, second.send_after) == (S.SCHEDULED, CLOSED_AT + timedelta(minutes=16))
    assert SurveyRequest.objects.filter(status=S.SCHEDULED).count() == 1


def test_newer_close_cancels_an_older_one_still_waiting(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    first = close(client)
    close_again(client, after=timedelta(minutes=4), part_id="7100000010")
    first.refresh_from_db()
    assert (first.status, first.reason, first.get_reason_display()) == (
        S.CANCELLED,
        "superseded",
        "Closed again later: the newer close is the one surveyed",
    )


def test_a_reopen_after_a_newer_close_cancels_the_newer_and_leaves_the_older_superseded(client, account):
    """The first in time wins for each close: the older was superseded (minute 4) before the reopen (minute 6),
    whichever of the two the loop over the conversation's closes meets first. (Found by the decision's property.)"""
    configure(account, channel_delay=timedelta(minutes=10))
    first = close(client)
    second = close_again(client, after=timedelta(minutes=4), part_id="7100000010")
    event(client, "conversation_admin_opened", at=CLOSED_AT + timedelta(minutes=6))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.reason) == (S.CANCELLED, "superseded")
    assert (second.status, second.reason) == (S.CANCELLED, "reopened")


def test_older_close_arriving_late_is_recorded_cancelled(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    later = close_again(client, after=timedelta(minutes=4), part_id="7100000010")
    first = close(client)
    later.refresh_from_db()
    assert first.status == S.CANCELLED
    assert later.status == S.SCHEDULED


def test_first_message_tagged_during_the_delay_turns_into_do_not_send(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    survey_request = close(client)
    event(client, "conversation_part_tag_created", at=CLOSED_AT + timedelta(minutes=1))
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.decision, survey_request.reason) == (
        S.SCHEDULED,
        Decision.DO_NOT_SEND,
        DoNotSendReason.SUPPRESSED_TAG,
    )
    assert survey_request.tags == ["fraud"]


def test_first_message_tagged_before_the_close_counts_at_the_close(client, account):
    event(client, "conversation_part_tag_created", at=CLOSED_AT - timedelta(minutes=1))
    assert close(client).decision == Decision.DO_NOT_SEND


def test_tag_on_another_part_is_ignored(client, account):
    payload = load_fixture("conversation_part_tag_created")
    payload["data"]["item"]["conversation_parts"]["conversation_parts"][0]["id"] = "7199999999"
    post_webhook(client, payload)
    webhook = InboundWebhook.objects.get()
    assert (webhook.status, webhook.error) == (InboundWebhook.Status.IGNORED, "Tag is not on the first message")
    assert not ConversationEvent.objects.exists()


def test_same_closure_under_another_notification_id_is_recorded_once(client, account):
    close(client)
    replay = notification("conversation_admin_closed", id="notif_replayed")
    assert post_webhook(client, replay).status_code == 200
    assert SurveyRequest.objects.count() == 1
    assert InboundWebhook.objects.get(notification_id="notif_replayed").status == InboundWebhook.Status.PROCESSED


def test_each_workspace_goes_to_its_own_account(client, account):
    other = AccountFactory(intercom_workspace_id="ws2other")
    close(client)
    payload = notification("conversation_admin_closed", app_id="ws2other", id="notif_other")
    post_webhook(client, payload)
    assert SurveyRequest.objects.get(inbound_webhook__notification_id="notif_other").account == other
    assert SurveyRequest.objects.filter(account=account).count() == 1


def test_overlong_names_are_cut_to_fit_not_lost(client, account):
    user = {**load_fixture("conversation_admin_closed")["data"]["item"]["user"], "name": "Ada " * 100}
    survey_request = close(client, user=user)
    assert survey_request.customer_name == ("Ada " * 100)[:200]
    assert survey_request.status == S.SCHEDULED


def test_same_closure_delivered_later_again_does_not_cancel_itself(client, account):
    configure(account, channel_delay=timedelta(minutes=10))
    first = close(client)
    again = notification("conversation_admin_closed", id="notif_again", created_at=int(CLOSED_AT.timestamp()) + 30)
    post_webhook(client, again)
    first.refresh_from_db()
    assert first.status == S.SCHEDULED
    assert SurveyRequest.objects.count() == 1


def test_a_reply_after_the_delay_doesnt_cancel_a_retry_or_a_resend(client, account):
    """Retries and resends move send_after; the window for cancelling stays close + channel delay."""
    configure(account, channel_delay=timedelta(minutes=2))
    survey_request = close(client)
    SurveyRequest.objects.filter(pk=survey_request.pk).update(send_after=CLOSED_AT + timedelta(days=2))
    event(client, "conversation_user_replied", at=CLOSED_AT + timedelta(days=1))
    survey_request.refresh_from_db()
    assert survey_request.status == S.SCHEDULED


def test_a_tag_that_makes_a_waiting_request_invalid_logs_it_as_invalid(client, account):
    from surveys.models import ApiRequest

    configure(account, channel_delay=timedelta(minutes=10))
    survey_request = close(client, "conversation_admin_closed_v2")
    configure(account, chat_enabled=False)
    tag = load_fixture("conversation_admin_closed_v2")
    tag.update(topic="conversation_part.tag.created", id="notif_tag_v2", created_at=tag["created_at"] + 60)
    part = tag["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    part.update(id="3400000201", part_type="comment", tags=[{"type": "tag", "id": "1", "name": "dupe"}])
    post_webhook(client, tag)
    survey_request.refresh_from_db()
    assert survey_request.status == S.INVALID
    assert ApiRequest.objects.get(survey_request=survey_request).error_message == "Channel not enabled for company"


# Claiming: which waiting webhooks a drain takes, and in what order.

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and advisory locks: PostgreSQL only (SQLite runs one drain)"
)


def store(client, name, *, id, at: datetime, conversation: str | None = None) -> InboundWebhook:
    """A webhook stored by the request and left waiting, as if no task had run yet."""
    payload = notification(name, id=id, created_at=int(at.timestamp()))
    if conversation is not None:
        payload["data"]["item"]["id"] = conversation
    assert post_webhook(client, payload, process=False).status_code == 200
    return InboundWebhook.objects.get(notification_id=id)


@contextmanager
def held_by_another_drain(hold):
    """Run `hold()` in another thread (its own database connection), in a transaction kept open until the block ends."""
    ready, release, failed = threading.Event(), threading.Event(), []

    def run():
        try:
            with transaction.atomic():
                hold()
                ready.set()
                release.wait(timeout=30)
        except Exception as exc:  # pragma: no cover - reported below
            failed.append(exc)
            ready.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(timeout=30)
        assert not failed, failed
        yield
    finally:
        release.set()
        thread.join(timeout=30)


def claimed(limit: int = 10) -> list[str]:
    with transaction.atomic():
        return [webhook.notification_id for webhook in inbound_webhooks_claim(limit=limit).webhooks]


def test_a_stored_webhook_knows_its_conversation(client, account):
    closed = store(client, "conversation_admin_closed", id="c1", at=CLOSED_AT)
    deleted = store(client, "conversation_deleted", id="d1", at=CLOSED_AT)
    assert closed.conversation_key == "ws1test conversation 30100000001"
    assert deleted.conversation_key == "ws1test conversation " + deleted_conversation_id()
    erased = store(client, "contact_deleted", id="e1", at=CLOSED_AT)
    assert erased.conversation_key.startswith("ws1test contact ")


def deleted_conversation_id() -> str:
    return load_fixture("conversation_deleted")["data"]["item"]["conversation_id"]


def test_a_claim_takes_each_conversation_in_created_at_order(client, account):
    store(client, "conversation_admin_opened", id="reopen", at=CLOSED_AT + timedelta(seconds=30))
    store(client, "conversation_admin_closed", id="close", at=CLOSED_AT)
    store(client, "conversation_admin_closed", id="other", at=CLOSED_AT + timedelta(seconds=10), conversation="999")
    assert claimed() == ["close", "other", "reopen"]


def test_a_failing_webhook_in_a_batch_is_marked_failed_and_the_rest_of_the_batch_is_kept(
    client, account, monkeypatch, settings
):
    settings.INTAKE_BATCH_SIZE, settings.INTAKE_BATCH_TRANSACTION_SECONDS = 10, 60
    for n in range(3):
        store(
            client, "conversation_admin_closed", id=f"n{n}", at=CLOSED_AT + timedelta(seconds=n), conversation=f"c{n}"
        )
    closed = intake.HANDLERS["conversation.admin.closed"]

    def fails_for_c1(account, notification, webhook, closures):
        if notification.conversation_id == "c1":
            closed(account, notification, webhook, closures)
            closures.flush()  # its writes are undone
            raise KeyError("assignee")
        return closed(account, notification, webhook, closures)

    monkeypatch.setitem(intake.HANDLERS, "conversation.admin.closed", fails_for_c1)
    assert intake.inbound_webhooks_process_pending() == 3
    outcome = dict(InboundWebhook.objects.values_list("notification_id", "status"))
    assert outcome == {"n0": "processed", "n1": "failed", "n2": "processed"}
    assert InboundWebhook.objects.get(notification_id="n1").error == "KeyError: 'assignee'"
    assert sorted(SurveyRequest.objects.values_list("conversation_id", flat=True)) == ["c0", "c2"]
    # The batch's counts, written as it ends, leave out what the failed webhook had counted.
    kept = set(DailyCount.objects.exclude(count=0).values_list("account_id", "day", "kind", "count"))
    daily_counts_rebuild()
    assert set(DailyCount.objects.exclude(count=0).values_list("account_id", "day", "kind", "count")) == kept


def test_an_erasure_sharing_a_batch_with_a_failing_webhook_still_erases(client, account, monkeypatch, settings):
    """The batch is tried together first: the contact.deleted in it erases (and changes its webhook in memory),
    then a later webhook raises and all is undone. Acted on one at a time, the erasure starts from what is stored."""
    settings.INTAKE_BATCH_SIZE, settings.INTAKE_BATCH_TRANSACTION_SECONDS = 10, 60
    bea = close(client, "conversation_admin_closed_v2")
    assert bea.customer_email == "bea@customer.example"
    store(client, "contact_deleted", id="erase", at=CLOSED_AT + timedelta(hours=1))
    store(client, "conversation_admin_closed", id="boom", at=CLOSED_AT + timedelta(hours=2), conversation="c-boom")
    closed = intake.HANDLERS["conversation.admin.closed"]

    def fails_for_c_boom(account, notification, webhook, closures):
        if notification.conversation_id == "c-boom":
            raise KeyError("assignee")
        return closed(account, notification, webhook, closures)

    monkeypatch.setitem(intake.HANDLERS, "conversation.admin.closed", fails_for_c_boom)
    process_inbound_webhooks()

    erasure = InboundWebhook.objects.get(notification_id="erase")
    assert (erasure.status, erasure.error) == (InboundWebhook.Status.PROCESSED, "")
    assert erasure.erased_at is not None
    bea.refresh_from_db()
    assert (bea.customer_email, bea.customer_name, bea.customer_id, bea.status) == ("", "", "", S.CANCELLED)
    assert not SurveyRequest.objects.filter(customer_email__icontains="bea@").exists()
    assert not InboundWebhook.objects.filter(body__icontains="bea@customer.example").exists()
    failed = InboundWebhook.objects.get(notification_id="boom")
    assert (failed.status, failed.error) == (InboundWebhook.Status.FAILED, "KeyError: 'assignee'")
    assert not SurveyRequest.objects.filter(conversation_id="c-boom").exists()


def test_a_batch_cut_short_by_its_time_leaves_the_rest_waiting_in_order(client, account, settings):
    settings.INTAKE_BATCH_SIZE, settings.INTAKE_BATCH_TRANSACTION_SECONDS = 10, 0
    store(client, "conversation_admin_closed", id="close", at=CLOSED_AT)
    store(client, "conversation_admin_opened", id="reopen", at=CLOSED_AT + timedelta(seconds=30))
    with transaction.atomic():
        claim = inbound_webhooks_claim(limit=10)
        assert (
            intake.inbound_webhooks_process_batch(claim, deadline=0, now=timezone.now(), tasks=TaskBatch()) == 1
        )  # at least one, then time is up
    assert InboundWebhook.objects.get(notification_id="close").status == InboundWebhook.Status.PROCESSED
    assert InboundWebhook.objects.get(notification_id="reopen").status == InboundWebhook.Status.RECEIVED


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_conversation_one_drain_holds_is_left_to_it(client, account):
    store(client, "conversation_admin_closed", id="close", at=CLOSED_AT)
    store(client, "conversation_admin_opened", id="reopen", at=CLOSED_AT + timedelta(seconds=30))
    store(client, "conversation_admin_closed", id="other", at=CLOSED_AT + timedelta(seconds=10), conversation="999")
    theirs: list[str] = []
    with held_by_another_drain(lambda: theirs.extend(claimed(limit=1))):
        assert theirs == ["close", "reopen"]  # the oldest row brought its whole conversation
        assert claimed() == ["other"]
        # A reply arriving now is free to lock, but its conversation is leased: it waits for the holder.
        store(client, "conversation_user_replied", id="reply", at=CLOSED_AT + timedelta(seconds=40))
        assert claimed() == ["other"]
    assert claimed() == ["close", "other", "reopen", "reply"]  # let go without acting: all waiting again


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_drain_never_acts_on_a_newer_event_while_another_holds_an_older_one(client, account):
    close = store(client, "conversation_admin_closed", id="close", at=CLOSED_AT)
    store(client, "conversation_admin_opened", id="reopen", at=CLOSED_AT + timedelta(seconds=30))
    store(client, "conversation_admin_closed", id="other", at=CLOSED_AT + timedelta(seconds=10), conversation="999")

    def lock_without_lease():  # what a drain's first step holds when another drain won the conversation's lease
        list(InboundWebhook.objects.select_for_update().filter(pk=close.pk))

    with held_by_another_drain(lock_without_lease):
        assert claimed() == ["other"]  # the reopen waits for the close


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_no_more_drains_run_than_allowed(client, account, settings):
    settings.INTAKE_DRAINS = 1
    store(client, "conversation_admin_closed", id="close", at=CLOSED_AT)

    def take_the_only_slot():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [DRAIN_SLOT_LOCKS])

    with held_by_another_drain(take_the_only_slot):
        assert intake.inbound_webhooks_process_pending() == 0
    assert intake.inbound_webhooks_process_pending() == 1


@postgres_only
def test_a_full_batch_queues_one_more_drain(client, account, settings, django_capture_on_commit_callbacks):
    settings.INTAKE_BATCH_SIZE = 2
    for n in range(5):
        store(
            client, "conversation_admin_closed", id=f"n{n}", at=CLOSED_AT + timedelta(seconds=n), conversation=f"c{n}"
        )
    queued_tasks_purge()
    with django_capture_on_commit_callbacks(execute=True):
        assert intake.inbound_webhooks_process_pending() == 5
    drains = [task for task in queued_tasks() if task["func"] == PROCESS_WEBHOOKS_TASK]
    assert len(drains) == 1


def test_sqlite_runs_one_drain_however_full_its_batches(client, account, settings, django_capture_on_commit_callbacks):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's single drain")
    settings.INTAKE_BATCH_SIZE = 2
    for n in range(5):
        store(
            client, "conversation_admin_closed", id=f"n{n}", at=CLOSED_AT + timedelta(seconds=n), conversation=f"c{n}"
        )
    queued_tasks_purge()
    with django_capture_on_commit_callbacks(execute=True):
        assert intake.inbound_webhooks_process_pending() == 5
    assert not [task for task in queued_tasks() if task["func"] == PROCESS_WEBHOOKS_TASK]


def test_one_batch_decides_the_customers_closes_as_closes_one_by_one_would(client, account, settings):
    """A batch reads what it needs once and keeps it current. A survey still waiting holds nobody back at intake (it
    may yet be cancelled): the send decides, when whichever goes first has gone out (test_decision.py)."""
    configure(account, suppression_window=timedelta(days=7))
    settings.INTAKE_BATCH_SIZE = 10
    store(client, "conversation_admin_closed", id="first", at=CLOSED_AT, conversation="c1")
    store(client, "conversation_admin_closed", id="second", at=CLOSED_AT + timedelta(hours=1), conversation="c2")
    again = notification(
        "conversation_admin_closed", id="again", created_at=int((CLOSED_AT + timedelta(hours=2)).timestamp())
    )
    again["data"]["item"]["id"] = "c1"
    again["data"]["item"]["conversation_parts"]["conversation_parts"][0]["id"] = "part-again"  # its own closure
    assert post_webhook(client, again, process=False).status_code == 200
    assert intake.inbound_webhooks_process_pending() == 3
    outcome = {
        sr.conversation_id + "@" + sr.inbound_webhook.notification_id: (sr.status, sr.reason)
        for sr in SurveyRequest.objects.select_related("inbound_webhook")
    }
    assert outcome == {
        "c1@first": (S.SCHEDULED, ""),  # closed again after its delay (none): it goes out, c1@again finds it surveyed
        "c2@second": (S.SCHEDULED, ""),  # was suppressed by c1@first, which then never went out
        "c1@again": (S.SCHEDULED, ""),
    }
