"""Service recovery: when a customer rates a conversation at or under the account's low-rating threshold, tag the
Intercom conversation, post an internal note, assign it for follow-up, POST a Slack-compatible webhook and email the
alert recipients (each as the account chooses).

An outbox, as the Intercom notes are (notes.py): each run finds the low ratings Stella's feedback records brought
(within LOOKBACK of their last change) and writes one RecoveryAction per record and kind; a unique constraint keeps
that to one whatever runs twice (the same record sent again edited, two pulls at once). Each action is claimed
before it is done; one still claimed after CLAIM_LOST may have reached the other side (the portal stopped between the
action and its record), so it is failed, never done again: a missing tag is better than two notes. A 429 puts the
action, and the rest of the account's for the same service, off until the reset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import QuerySet
from django.utils import timezone

from integrations.intercom.client import IntercomClient, IntercomError, IntercomRateLimited
from integrations.text_webhook import TextWebhookError, TextWebhookRateLimited, text_webhook_post
from portal.crypto import SecretUndecryptable
from portal.text import displayable
from surveys.accounts.test_request import TEST_CLOSURE_ID
from surveys.loop.notes import _escape
from surveys.models import Account, Feedback, IntegrationSettings, RecoveryAction, SurveyRequest
from surveys.reporting.presenters import stars_in_words

logger = logging.getLogger(__name__)

Kind = RecoveryAction.Kind
Status = RecoveryAction.Status
# Records changed this long ago or less are looked at: turning recovery on doesn't act on a year of ratings.
LOOKBACK = timedelta(days=1)
# An action claimed this long ago and not finished: its run died while doing it.
CLAIM_LOST = timedelta(minutes=10)
BATCH = 200
ERROR_LENGTH = 500
INTERCOM_KINDS = (Kind.TAG, Kind.NOTE, Kind.ASSIGN)


class RateLimited(Exception):
    def __init__(self, reset_at: datetime) -> None:
        self.reset_at = reset_at


def recovery_kinds(integration: IntegrationSettings) -> list[str]:
    """The actions the account chose, in the order they are done."""
    if integration.low_rating_threshold is None:
        return []
    chosen = {
        Kind.TAG: bool(integration.low_rating_tag.strip()),
        Kind.NOTE: integration.low_rating_note,
        Kind.ASSIGN: bool(integration.low_rating_assign.strip()),
        Kind.WEBHOOK: bool(integration.low_rating_webhook),
        Kind.EMAIL: bool(integration.alert_recipient_list),
    }
    return [kind for kind, on in chosen.items() if on]


def recovery_all(*, now: datetime) -> int:
    """For every account with a low-rating threshold: find its low ratings and do what waits. Returns how many
    actions were done."""
    done = 0
    accounts = Account.objects.select_related("integration").filter(integration__low_rating_threshold__isnull=False)
    for account in accounts.order_by("pk"):
        try:
            low_ratings_find(account, now=now)
            done += recovery_actions_do(account, now=now)
        except Exception:
            logger.exception("recovery.crashed", extra={"account": account.pk})
    return done


def low_ratings_find(account: Account, *, now: datetime) -> int:
    """Write the waiting actions of each low rating changed within LOOKBACK (one per record and kind, ever)."""
    integration = account.integration
    kinds = recovery_kinds(integration)
    if not kinds:
        return 0
    low = (
        Feedback.objects.filter(
            account=account,
            star_rating__lte=integration.low_rating_threshold,
            response_received_at__isnull=False,
            survey_request__isnull=False,
            survey_request__erased_at__isnull=True,
            updated_at__gte=now - LOOKBACK,
        )
        .exclude(survey_request__closure_id=TEST_CLOSURE_ID)
        .order_by("updated_at")[:BATCH]
    )
    actions = [
        RecoveryAction(
            account=account, feedback=feedback, survey_request_id=feedback.survey_request_id, kind=kind, do_after=now
        )
        for feedback in low
        for kind in kinds
    ]
    created = RecoveryAction.objects.bulk_create(actions, ignore_conflicts=True)
    return len(created)


def recovery_actions_do(account: Account, *, now: datetime) -> int:
    """Do the account's waiting actions, oldest first; each claimed first, so of two runs one does it."""
    _lost_claims_fail(account, now=now)
    done = 0
    limited: set[str] = set()  # services that asked us to wait, this run
    waiting = _waiting(account, now=now).select_related("feedback", "survey_request")[:BATCH]
    for action in waiting:
        service = "intercom" if action.kind in INTERCOM_KINDS else action.kind
        if service in limited:
            continue
        claimed = RecoveryAction.objects.filter(pk=action.pk, status=Status.WAITING).update(
            status=Status.DOING, claimed_at=timezone.now()
        )
        if not claimed:
            continue
        try:
            ACTIONS[action.kind](account, action)
        except RateLimited as exc:  # nothing was done: this one and the service's others wait for the reset
            limited.add(service)
            RecoveryAction.objects.filter(pk=action.pk).update(status=Status.WAITING, do_after=exc.reset_at)
            logger.info("recovery.rate_limited", extra={"account": account.pk, "kind": action.kind})
            continue
        except (IntercomError, TextWebhookError, SecretUndecryptable, OSError, ValueError) as exc:
            _finish(action, status=Status.FAILED, error=str(exc))
            continue
        _finish(action, status=Status.DONE)
        done += 1
    return done


def _finish(action: RecoveryAction, *, status: str, error: str = "") -> None:
    RecoveryAction.objects.filter(pk=action.pk).update(
        status=status, error=error[:ERROR_LENGTH], done_at=timezone.now() if status == Status.DONE else None
    )


def _lost_claims_fail(account: Account, *, now: datetime) -> None:
    RecoveryAction.objects.filter(account=account, status=Status.DOING, claimed_at__lt=now - CLAIM_LOST).update(
        status=Status.FAILED,
        error="Stopped while under way: it may have been done, so it isn't done again.",
    )


def _waiting(account: Account, *, now: datetime) -> QuerySet[RecoveryAction]:
    # Nothing more is said of a customer once erased (surveys/accounts/privacy.py): their actions stay undone.
    return RecoveryAction.objects.filter(
        account=account, status=Status.WAITING, do_after__lte=now, survey_request__erased_at__isnull=True
    )


# ---- the actions ----


def recovery_summary(feedback: Feedback, survey_request: SurveyRequest) -> list[str]:
    """What every action says of the low rating: the rating, the comment and the teammate credited."""
    teammate = survey_request.teammate_name or survey_request.teammate_email or "nobody"
    lines = [
        f"Low rating: {stars_in_words(feedback.star_rating)} for conversation {survey_request.conversation_id}.",
        f"Teammate credited: {displayable(teammate)}.",
    ]
    if feedback.comment:
        lines.append(f"Comment: “{displayable(feedback.comment)}”")
    return lines


def _intercom(account: Account) -> tuple[IntercomClient, str]:
    integration = account.integration
    author = integration.intercom_note_author_id
    if not author:
        raise IntercomError("No teammate set to act as in Intercom (the Intercom note author).")
    return IntercomClient(integration.intercom_token), author


def _intercom_call(call: Callable[[], None]) -> None:
    try:
        call()
    except IntercomRateLimited as exc:
        raise RateLimited(exc.reset_at) from None


def _tag(account: Account, action: RecoveryAction) -> None:
    client, author = _intercom(account)
    conversation = _conversation_id(action)
    tag = account.integration.low_rating_tag.strip()
    _intercom_call(lambda: client.conversation_tag_add(conversation, admin_id=author, tag=tag))


def _note(account: Account, action: RecoveryAction) -> None:
    client, author = _intercom(account)
    lines = recovery_summary(action.feedback, _survey_request(action))
    body = "<p>" + "</p><p>".join(_escape(line) for line in ["Stella Connect: service recovery.", *lines]) + "</p>"
    conversation = _conversation_id(action)
    _intercom_call(lambda: client.conversation_note_add(conversation, admin_id=author, body=body))


def _assign(account: Account, action: RecoveryAction) -> None:
    client, author = _intercom(account)
    target = account.integration.low_rating_assign.strip()
    team = target.casefold().startswith("team:")
    assignee = target.split(":", 1)[1].strip() if team else target
    conversation = _conversation_id(action)
    _intercom_call(lambda: client.conversation_assign(conversation, admin_id=author, assignee_id=assignee, team=team))


def _webhook(account: Account, action: RecoveryAction) -> None:
    survey_request = _survey_request(action)
    lines = recovery_summary(action.feedback, survey_request)
    text = f"{account.name}: " + " ".join(lines) + f" {survey_request.conversation_url}"
    try:
        text_webhook_post(account.integration.low_rating_webhook_url, text)
    except TextWebhookRateLimited as exc:
        raise RateLimited(exc.reset_at) from None


def _email(account: Account, action: RecoveryAction) -> None:
    survey_request = _survey_request(action)
    recipients = account.integration.alert_recipient_list
    if not recipients:
        raise ValueError("No alert recipients to email.")
    lines = recovery_summary(action.feedback, survey_request)
    body = "\n".join([*lines, "", f"The conversation: {survey_request.conversation_url}"])
    subject = f"[{account.name}] Low rating: {stars_in_words(action.feedback.star_rating)}"
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)


def _survey_request(action: RecoveryAction) -> SurveyRequest:
    if action.survey_request is None:
        raise ValueError("The feedback record's survey request is gone.")
    return action.survey_request


def _conversation_id(action: RecoveryAction) -> str:
    return _survey_request(action).conversation_id


ACTIONS: dict[str, Callable[[Account, RecoveryAction], None]] = {
    Kind.TAG: _tag,
    Kind.NOTE: _note,
    Kind.ASSIGN: _assign,
    Kind.WEBHOOK: _webhook,
    Kind.EMAIL: _email,
}


def recovery_state(action: RecoveryAction) -> str:
    """Where an action stands, in words: done when, waiting until when, failed why."""
    if action.status == Status.DONE and action.done_at:
        return f"done {timezone.localtime(action.done_at):%Y-%m-%d %H:%M %Z}"
    if action.status == Status.WAITING:
        return f"waiting, not before {timezone.localtime(action.do_after):%Y-%m-%d %H:%M %Z}"
    if action.status == Status.FAILED:
        return f"failed: {action.error}"
    return str(action.get_status_display()).lower()
