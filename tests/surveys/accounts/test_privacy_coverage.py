"""Erasure reaches every column that holds a customer's text, and no table can be forgotten.

Every text column of every model of every installed app is either declared in surveys.accounts.privacy.PERSONAL_TEXT (and
erased) or listed below as holding no customer text, with why. A person planted in every declared column is then
erased on request, by Intercom's contact.deleted and by the retention job, and must be gone from all of them."""

import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.db.models import Field, Model
from django.utils import timezone
from django_q.models import Task

from integrations.models import InboundWebhook
from portal.schedules import send_task_name
from surveys.accounts.privacy import (
    AFTER_ERASURE,
    NOT_POSTED,
    PERSONAL_TEXT,
    customer_erase,
    personal_data_erase_expired,
)
from surveys.delivery.survey_requests import survey_request_feedback_request
from surveys.intake import process as intake
from surveys.intake.process import inbound_webhook_replay
from surveys.loop.notes import intercom_notes_find, intercom_notes_post
from surveys.models import ApiRequest, Feedback, IntercomNote, QuarantinedFeedback, SurveyRequest
from surveys.tasks import process_inbound_webhooks
from tests.factories import FeedbackFactory
from tests.helpers import load_fixture, post_webhook

pytestmark = pytest.mark.django_db

# What a column's internal type is when it can hold text (EmailField, URLField and SlugField report CharField;
# django-q2's pickled fields and the portal's encrypted ones, TextField).
TEXT_TYPES = {
    "CharField",
    "TextField",
    "JSONField",
    "BinaryField",
    "FileField",
    "FilePathField",
    "ImageField",
    "GenericIPAddressField",
    "IPAddressField",
}

CHOICE = "one of a fixed set of values"
STAFF = "the company's own people or the portal's users, not its customers"
SANDBOX = (
    "the sandbox's stand-in for Stella or Intercom (installed only with SANDBOX=true: make run, tests and benchmarks): "
    "it plays the vendor's own copy, which the portal's erasure does not reach in production either"
)

# Every text column that holds no customer's personal text, by "app.Model.column", or a whole model by "app.Model".
NO_CUSTOMER_TEXT: dict[str, str] = {
    "surveys.ApiRequest.error_code": "a code of integrations/messages.py, never free text",
    "surveys.SurveyRequest.detail_code": "a code of integrations/messages.py, never free text",
    "surveys.SurveyRequest.team_id": "an Intercom team's id, checked as an id by the parser",
    "surveys.SurveyRequest.sample_stratum": "a teammate's Intercom admin id, as teammate_id holds it",
    "surveys.SurveyRequest.attribution": "the portal's own words on whom it credited, naming nobody",
    # Django's and the libraries' tables.
    "admin.LogEntry": "what staff changed in the admin: an id, the row's name (no model's name holds a customer) "
    "and which fields",
    "auth.Permission": "permission names",
    "auth.Group": "group names",
    "auth.User": STAFF,
    "contenttypes.ContentType": "model names",
    "sessions.Session": "signed-in staff's sessions (who they are, messages shown to them): they expire",
    "axes.AccessAttempt": "sign-in attempts on the admin, status page and API: " + STAFF,
    "axes.AccessLog": "sign-ins: " + STAFF + "; the retention job deletes them all the same",
    "axes.AccessFailureLog": "failed sign-ins: " + STAFF + "; the retention job deletes them all the same",
    "authtoken.Token": "DRF's own token table, unused: portal.ApiToken replaces it",
    "django_q.Task.id": "a task's random id",
    "django_q.Task.name": "a task's name: 'send survey request 12' and the like",
    "django_q.Task.func": "a dotted path",
    "django_q.Task.hook": "a dotted path",
    "django_q.Task.args": "ids: every task the portal queues is given a row's id, never its text",
    "django_q.Task.kwargs": "ids, as args",
    "django_q.Task.group": "a task group's name",
    "django_q.Task.cluster": "the cluster's name",
    "django_q.Schedule": "the schedule registry's entries (portal/schedules.py)",
    "django_q.OrmQ": "tasks waiting on the database broker: a signed dotted path and a row's id",
    "portal.ApiToken": "an API token's SHA-256 and its last 4 characters",
    "portal.UserPreference": "a user's time zone",
    "portal.ClusterHeartbeat": "a task cluster's host:pid and its processes' counts (metric names, labels, figures)",
    # The vendor layer.
    "integrations.InboundWebhook.headers": "Intercom's request headers (agent, request id; secrets stripped); "
    "emptied with the body all the same",
    "integrations.InboundWebhook.body_sha256": "a digest: the body can't be read back from it",
    "integrations.InboundWebhook.notification_id": "Intercom's id of the notification",
    "integrations.InboundWebhook.topic": "Intercom's topic name",
    "integrations.InboundWebhook.workspace_id": "the company's Intercom workspace",
    "integrations.InboundWebhook.status": CHOICE,
    # The domain.
    "surveys.Account": "the company's name and Intercom workspace",
    "surveys.IntegrationSettings": "what a CSM chose: rules, encrypted keys, URLs, tags, and staff to alert",
    "surveys.HistoricalAccount": "the account's configuration on record (portal/history.py): what surveys.Account "
    "holds, and who changed it (" + STAFF + ")",
    "surveys.HistoricalIntegrationSettings": "the settings' configuration on record: what surveys.IntegrationSettings "
    "holds (keys only as mask and fingerprint), and who changed it (" + STAFF + ")",
    "surveys.IntegrationHealth": "what the portal found of a key or token, and the workspace's name",
    "surveys.Teammate": "teammates as Intercom lists them: " + STAFF,
    "surveys.StellaEmployee": "employees as Stella lists them: " + STAFF,
    "surveys.TeammateDailyCount": "counts per teammate: " + STAFF,
    "surveys.DailyCount": "counts",
    "surveys.StellaSyncState": "where reading back from Stella stands, and why a whole pull failed",
    "surveys.ConversationEvent.conversation_id": "Intercom's id of the conversation",
    "surveys.ConversationEvent.kind": CHOICE,
    "surveys.ConversationEvent.tags": "the company's tag names",
    "surveys.SurveyRequest.conversation_id": "Intercom's id of the conversation",
    "surveys.SurveyRequest.conversation_url": "the conversation's address in Intercom: workspace and conversation ids",
    "surveys.SurveyRequest.closure_id": "Intercom's id of the close",
    "surveys.SurveyRequest.channel": CHOICE,
    "surveys.SurveyRequest.channel_source": "Intercom's name for the channel",
    "surveys.SurveyRequest.assignee_kind": CHOICE,
    "surveys.SurveyRequest.teammate_id": STAFF,
    "surveys.SurveyRequest.teammate_name": STAFF,
    "surveys.SurveyRequest.teammate_email": STAFF,
    "surveys.SurveyRequest.customer_role": "Intercom's kind of contact: user or lead",
    "surveys.SurveyRequest.tags": "the company's tag names",
    "surveys.SurveyRequest.status": CHOICE,
    "surveys.SurveyRequest.decision": CHOICE,
    "surveys.SurveyRequest.reason": CHOICE,
    "surveys.QuarantinedFeedback.uuid": "Stella's id of its record",
    "surveys.QuarantinedFeedback.ext_interaction_id": "Intercom's id of the conversation",
    "surveys.QuarantinedFeedback.reason": "why the record can't be stored, in the portal's words: never its content",
    "surveys.SurveyRequest.verdicts": "each rule's name and reason code",
    "surveys.SurveyRequest.mode": CHOICE,
    "surveys.SurveyRequest.reconcile_flag": CHOICE,
    "surveys.ApiRequest.mode": CHOICE,
    "surveys.ApiRequest.method": CHOICE,
    "surveys.ApiRequest.url": "Stella's endpoint",
    "surveys.ApiRequest.request_headers": "the headers sent to Stella, its key redacted",
    "surveys.ApiRequest.outcome": CHOICE,
    "surveys.Feedback.uuid": "Stella's id of the record",
    "surveys.Feedback.ext_interaction_id": "Intercom's id of the conversation",
    "surveys.Feedback.mode": CHOICE,
    "surveys.Feedback.channel": "Stella's name for the channel",
    "surveys.Feedback.employee_email": STAFF,
    "surveys.Feedback.employee_custom_id": STAFF,
    "surveys.Feedback.employee_name": STAFF,
    "surveys.Feedback.team": STAFF,
    "surveys.Feedback.delivery_status": "Stella's delivery status",
    "surveys.IntercomNote.event": CHOICE,
    "surveys.IntercomNote.status": CHOICE,
    "surveys.IntercomNote.error": "why a post failed, in the portal's words (integrations/intercom/client.py)",
    # Inbox app and service recovery: what was done, never what it said (built from the feedback when done).
    "surveys.RecoveryAction.kind": CHOICE,
    "surveys.RecoveryAction.status": CHOICE,
    "surveys.RecoveryAction.error": "why an action failed, in the portal's words (surveys/loop/recovery.py)",
    # The sandbox.
    "sandbox.StellaSandboxEmployee": SANDBOX,
    "sandbox.StellaSandboxRequest": SANDBOX,
    "sandbox.IntercomRecord": SANDBOX,
    "sandbox.StellaSandboxFeedback": SANDBOX,
    "sandbox.StellaSandboxCounter": SANDBOX,
    "sandbox.IntercomSandboxNote": SANDBOX,
    "sandbox.SandboxReceived": SANDBOX,
}


def text_columns(model: type[Model]) -> list[Field]:
    return [field for field in model._meta.concrete_fields if field.get_internal_type() in TEXT_TYPES]


def declared() -> set[str]:
    return {f"{model._meta.label}.{column}" for model, columns in PERSONAL_TEXT.items() for column in columns}


def test_every_text_column_of_every_model_is_erased_or_holds_no_customer_text():
    unaccounted = []
    for model in apps.get_models():
        if model._meta.proxy:  # its columns are its concrete model's, listed in turn
            assert model._meta.concrete_model in apps.get_models()
            continue
        for field in text_columns(model):
            name = f"{model._meta.label}.{field.name}"
            if name not in declared() and name not in NO_CUSTOMER_TEXT and model._meta.label not in NO_CUSTOMER_TEXT:
                unaccounted.append(name)
    assert not unaccounted, (
        "Declare how erasure treats each of these in surveys.accounts.privacy.PERSONAL_TEXT, or list it in NO_CUSTOMER_TEXT "
        f"here with why it holds no customer text: {unaccounted}"
    )


def test_both_lists_name_only_text_columns_that_exist_and_none_twice():
    models = {model._meta.label: model for model in apps.get_models()}
    columns = {f"{label}.{field.name}" for label, model in models.items() for field in text_columns(model)}
    for name in NO_CUSTOMER_TEXT:
        assert name in models or name in columns, f"{name} is no model or text column (renamed? dropped?)"
    assert declared() <= columns
    assert not declared() & NO_CUSTOMER_TEXT.keys()
    assert not {name.rsplit(".", 1)[0] for name in declared()} & NO_CUSTOMER_TEXT.keys()


# ---- A person planted in every declared column, erased three ways ----

BEA = "bea@customer.example"  # conversation_admin_closed_v2's customer, whom contact_deleted deletes
BEA_NAME = "Bea Buyer"
BEA_CONTACT = "6a1f0c2e9b3d4e0012ab0201"
COMMENT = "The courier left my parcel in the rain"
BEA_ZONE = "Pacific/Pitcairn"  # where Intercom said she is, for quiet hours kept in the customer's time zone
BEA_TEXT = (BEA, BEA_NAME, BEA_CONTACT, COMMENT, BEA_ZONE)


def holding_bea(model: type[Model], column: str) -> list[object]:
    """The values in `column` that still name Bea or quote her comment."""
    found = []
    for value in model._default_manager.values_list(column, flat=True):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if any(word.casefold() in text.casefold() for word in BEA_TEXT):
            found.append(value)
    return found


def plant_bea(client, account, monkeypatch, *, contact_deletion_ignored: bool) -> SurveyRequest:
    """Bea's closed conversation, sent to Stella, answered with a comment, noted in Intercom; a replay of its
    webhook that failed quoting her; a send task that failed quoting her; and Intercom's deletion of her contact,
    stored, and ignored while the account was disabled (or left waiting)."""
    assert post_webhook(client, load_fixture("conversation_admin_closed_v2")).status_code == 200
    survey_request = SurveyRequest.objects.get(customer_id=BEA_CONTACT)
    SurveyRequest.objects.filter(pk=survey_request.pk).update(
        status=SurveyRequest.Status.SENT,
        sent_at=timezone.now(),
        customer_time_zone=BEA_ZONE,
        status_detail=f"Stella said {BEA} bounced once; it had waited for the quiet hours in {BEA_ZONE}",
    )
    survey_request.refresh_from_db()
    body = survey_request_feedback_request(survey_request, integration=account.integration).as_json()
    ApiRequest.objects.create(
        survey_request=survey_request,
        account=account,
        mode=survey_request.mode,
        url="https://api.stellaconnect.net/v1/requests",
        request_body=body,
        status_code=200,
        response_body=json.dumps(body),
        outcome=ApiRequest.Outcome.SENT,
        error_message=f"Earlier: invalid customer {BEA_NAME}",
    )
    FeedbackFactory(
        account=account,
        survey_request=survey_request,
        star_rating=2,
        comment=COMMENT,
        response_received_at=timezone.now(),
        raw={
            "customer": {"email": BEA, "full_name": BEA_NAME},
            "answers": {"agent_star_rating": {"comment": COMMENT, "selected_options": {}}},
        },
    )
    assert intercom_notes_find(account, now=timezone.now() + timedelta(minutes=2)) == 2  # decided, and the comment
    QuarantinedFeedback.objects.create(
        account=account,
        sequence_id=991,
        uuid="uuid-with-a-nul\\u0000",
        ext_interaction_id=survey_request.conversation_id,
        reason="Its uuid holds a NUL",
        raw=json.dumps({"customer": {"email": BEA}, "answers": {"agent_star_rating": {"comment": COMMENT}}}),
        quarantined_at=timezone.now(),
    )

    def quoting_bea(*args):
        raise ValueError(f"no channel for {BEA}")

    monkeypatch.setitem(intake.HANDLERS, "conversation.admin.closed", quoting_bea)
    assert inbound_webhook_replay(survey_request.inbound_webhook).status == InboundWebhook.Status.FAILED
    monkeypatch.undo()
    started = timezone.now()
    Task.objects.create(
        id="f" * 32,
        name=send_task_name(survey_request.pk),
        func="surveys.tasks.send_survey_request",
        args=(survey_request.pk,),
        started=started,
        stopped=started,
        result=f"no route for {BEA} : Traceback (most recent call last):\n  ...\nValueError: no route for {BEA}\n",
        success=False,
    )
    assert post_webhook(client, load_fixture("contact_deleted"), process=False).status_code == 200
    if contact_deletion_ignored:
        account.integration.enabled = False
        account.integration.save()
        process_inbound_webhooks()
        account.integration.enabled = True
        account.integration.save()
        assert InboundWebhook.objects.get(topic="contact.deleted").status == InboundWebhook.Status.IGNORED
    for model, columns in PERSONAL_TEXT.items():
        for column in columns:
            assert holding_bea(model, column), f"plant Bea in {model._meta.label}.{column} too"
    return survey_request


def erase_on_request(client, account):
    customer_erase(email=BEA.upper(), now=timezone.now())


def erase_when_intercom_deletes_the_contact(client, account):
    process_inbound_webhooks()  # the contact.deleted stored and waiting


def erase_after_the_retention_period(client, account):
    personal_data_erase_expired(now=timezone.now() + timedelta(days=91))


@pytest.mark.parametrize(
    "erase", [erase_on_request, erase_when_intercom_deletes_the_contact, erase_after_the_retention_period]
)
def test_every_declared_column_loses_the_person_however_they_are_erased(client, account, monkeypatch, erase):
    ignored = erase is not erase_when_intercom_deletes_the_contact
    survey_request = plant_bea(client, account, monkeypatch, contact_deletion_ignored=ignored)

    erase(client, account)

    left = {
        f"{model._meta.label}.{column}": found
        for model, columns in PERSONAL_TEXT.items()
        for column in columns
        if (found := holding_bea(model, column))
    }
    assert not left
    notes = IntercomNote.objects.filter(survey_request=survey_request)
    assert {note.erased_at is not None and note.body.startswith("(erased ") for note in notes} == {True}
    assert {(note.status, note.error) for note in notes} == {(IntercomNote.Status.FAILED, NOT_POSTED)}
    failed = survey_request.inbound_webhook
    failed.refresh_from_db()
    assert (failed.status, failed.traceback) == (InboundWebhook.Status.FAILED, "")
    assert failed.error.startswith("ValueError: (erased ")
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.feedback.star_rating) == (SurveyRequest.Status.SENT, 2)


def test_what_is_written_of_a_customer_after_erasure_is_never_posted_and_erased_by_the_retention_job(
    client, account, monkeypatch
):
    """The notes job had Bea's feedback in hand as she was erased; Stella then sent her edited answer again."""
    survey_request = plant_bea(client, account, monkeypatch, contact_deletion_ignored=True)
    IntercomNote.objects.all().delete()
    customer_erase(email=BEA, now=timezone.now())
    late = IntercomNote.objects.create(
        account=account,
        survey_request=survey_request,
        event=IntercomNote.Event.FEEDBACK,
        body=f"<p>Comment: “{COMMENT}”</p>",
        post_after=timezone.now(),
    )
    Feedback.objects.filter(survey_request=survey_request).update(
        comment=COMMENT, raw={"customer": {"email": BEA}, "answers": {}}
    )
    account.integration.intercom_note_author_id = "4100099"
    account.integration.save()
    assert intercom_notes_find(account, now=timezone.now() + timedelta(minutes=2)) == 0  # erased: nothing new
    assert intercom_notes_post(account, now=timezone.now()) == 0  # nor what was written as she was erased
    late.refresh_from_db()
    assert late.status == IntercomNote.Status.WAITING  # not even tried

    now = timezone.now()
    personal_data_erase_expired(now=now)

    late.refresh_from_db()
    assert (late.body, late.erased_at, late.status) == (
        f"(erased {now:%Y-%m-%d}: {AFTER_ERASURE})",
        now,
        IntercomNote.Status.FAILED,
    )
    record = Feedback.objects.get(survey_request=survey_request)
    assert record.comment == "" and BEA not in json.dumps(record.raw)
