"""Sending due survey requests to Stella: on time, with the right key, at most once.

The database, not the queue, is the truth about what is due: a task may be lost or
delivered twice, so every send starts by claiming its request with a conditional
update, and a sweep re-queues anything due that nobody holds.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Min, OuterRef, Q, Subquery
from django.utils import timezone

from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    IntercomNotFound,
    IntercomRateLimited,
    IntercomTokenRejected,
)
from integrations.intercom.payloads import AssigneeKind, Channel
from integrations.models import IntegrationSettings, Teammate
from surveys.counts import count_api_request
from surveys.models import ApiRequest, SurveyRequest
from surveys.selectors import conversation_history, survey_requests_due
from surveys.services import (
    CANCEL_DETAILS,
    InvalidTransition,
    survey_request_clip,
    survey_request_decide,
    survey_request_reject_locally,
    survey_request_transition,
    survey_requests_queue,
    survey_requests_wake_at,
)
from surveys.stella import RESULT_FIELDS, StellaClient, StellaResult, request_body
from surveys.suppression import STELLA_MESSAGES, Decision, SuppressionReason

logger = logging.getLogger(__name__)

S = SurveyRequest.Status
# What the send path may have learnt or decided: saved while the request is claimed.
DECIDED_FIELDS = [
    "channel", "channel_source", "assignee_kind", "teammate_name", "teammate_email", "customer_id",
    "customer_role", "customer_name", "customer_email", "tags", "decision", "reason", "verdicts", "mode",
]  # fmt: skip
SWEEP_BATCH = 5000


def survey_request_send(survey_request_id: int, *, now: datetime) -> SurveyRequest:
    """Send one due survey request to Stella, unless something cancelled, paused or took it first.

    Looks up in Intercom what the webhook left out, lets the rules decide again with it,
    then makes exactly one call and records its outcome. The claim, a conditional update
    from scheduled to sending, is committed with the row of the call before the call is made.
    """
    mapping = Teammate.objects.filter(account_id=OuterRef("account_id"), intercom_id=OuterRef("teammate_id"))
    requests = SurveyRequest.objects.select_related("account__settings").annotate(
        employee_custom_id=Subquery(mapping.values("stella_custom_id")[:1])
    )
    for _ in range(2):  # a change made while we looked (a tag, say) costs one more look
        survey_request = requests.get(pk=survey_request_id)
        settings = survey_request.account.settings
        if settings.sending_paused_at or not settings.enabled:
            # Leave it for the sweep, which queues it again once a CSM has fixed the key or enabled the account.
            SurveyRequest.objects.filter(pk=survey_request.pk, status=S.SCHEDULED).update(queued_at=None)
            return survey_request
        if survey_request.status != S.SCHEDULED or survey_request.send_after > now:
            return survey_request
        try:
            return _send(survey_request, settings=settings, now=now)
        except InvalidTransition:
            continue  # another sender took it, a reopen cancelled it, or a tag changed it: look again
    survey_request.refresh_from_db()
    return survey_request


def _send(survey_request: SurveyRequest, *, settings: IntegrationSettings, now: datetime) -> SurveyRequest:
    before = {field: getattr(survey_request, field) for field in DECIDED_FIELDS}
    teammate = None
    if survey_request.needs_lookup:
        # Looking up costs Intercom calls and time: take the request first.
        survey_request_transition(survey_request, to=S.SENDING, claimed_at=now)
        try:
            teammate = _survey_request_look_up(survey_request, settings=settings, now=now)
        except IntercomRateLimited as exc:
            survey_requests_wake_at(exc.reset_at)
            return survey_request_transition(
                survey_request,
                to=S.SCHEDULED,
                send_after=exc.reset_at,
                queued_at=None,
                claimed_at=None,
                status_detail=str(exc),
            )
        except IntercomTokenRejected as exc:
            IntegrationSettings.objects.filter(pk=settings.pk).update(intercom_token_rejected_at=now)
            logger.warning("intercom.token_rejected", extra={"account": survey_request.account_id})
            return _reject(survey_request, settings=settings, message=str(exc))
        except IntercomNotFound as exc:
            return _reject(survey_request, settings=settings, message=str(exc))
        except IntercomError as exc:
            return _retry_later(survey_request, message=str(exc), retry_after=None, now=now)

    survey_request_clip(survey_request)
    history = conversation_history(
        account=survey_request.account,
        conversation_id=survey_request.conversation_id,
        # Without a channel delay nothing can cancel a send, and tags are already on the request.
        with_events=survey_request.delay_ends_at > survey_request.closed_at,
    )
    cancelled_by = history.cancelling_event(after=survey_request.closed_at, before=survey_request.delay_ends_at)
    if cancelled_by is not None:
        return survey_request_transition(
            survey_request, to=S.CANCELLED, status_detail=CANCEL_DETAILS[cancelled_by.kind]
        )
    survey_request_decide(survey_request, settings=settings, history=history, looked_up=True)
    survey_request.mode = settings.mode
    changed = {
        field: getattr(survey_request, field)
        for field in DECIDED_FIELDS
        if getattr(survey_request, field) != before[field]
    }
    if survey_request.decision == Decision.INVALID:
        return _reject(survey_request, settings=settings, message=survey_request.status_detail, **changed)
    if survey_request.decision == Decision.SUPPRESSED:
        return survey_request_transition(survey_request, to=S.SUPPRESSED, **changed)

    client = StellaClient(base_url=settings.stella_base_url)
    body = request_body(
        survey_request,
        employee_custom_id=teammate.stella_custom_id if teammate else survey_request.employee_custom_id or "",
        brand=settings.brand,
        language=settings.language,
    )
    api_key = settings.api_key_for(survey_request.mode)
    api_request = client.new_api_request(
        survey_request=survey_request, mode=survey_request.mode, api_key=api_key, body=body
    )
    # Short transactions around the call, none during it: nothing waits on the database while Stella thinks.
    with transaction.atomic():
        if survey_request.status == S.SCHEDULED:
            survey_request_transition(survey_request, to=S.SENDING, claimed_at=now, **changed)
        elif not SurveyRequest.objects.filter(pk=survey_request.pk, status=S.SENDING, claimed_at=now).update(
            claimed_at=now, **changed
        ):
            # Claimed before the lookups, and no longer ours: the sweep gave up on us. Don't call.
            raise InvalidTransition(f"survey request {survey_request.pk} is no longer claimed by this sender")
        api_request.save()
        count_api_request(api_request)
    result = client.create_request(api_request, api_key=api_key)
    logger.info(
        "stella.request.sent",
        extra={"survey_request": survey_request.pk, "outcome": result.outcome, "status": result.status_code},
    )
    with transaction.atomic():
        api_request.save(update_fields=RESULT_FIELDS)
        if api_request.outcome == ApiRequest.Outcome.INVALID:
            count_api_request(api_request)
        return _apply(survey_request, result, settings=settings, now=now)


def _apply(
    survey_request: SurveyRequest, result: StellaResult, *, settings: IntegrationSettings, now: datetime
) -> SurveyRequest:
    attempts = survey_request.attempts + 1
    if result.outcome == ApiRequest.Outcome.SENT:
        return survey_request_transition(
            survey_request, to=S.SENT, sent_at=timezone.now(), attempts=attempts, status_detail=""
        )
    if result.outcome == ApiRequest.Outcome.RETRY:
        return _retry_later(survey_request, message=result.error_message, retry_after=result.retry_after, now=now)
    if result.outcome == ApiRequest.Outcome.INVALID and result.status_code in (401, 403):
        # Every other call with this key would fail the same way: stop until a CSM changes it.
        IntegrationSettings.objects.filter(pk=settings.pk, sending_paused_at__isnull=True).update(
            sending_paused_at=now, sending_paused_reason=f"Stella rejected the {survey_request.mode} API key"
        )
        logger.warning(
            "stella.api_key_rejected", extra={"account": survey_request.account_id, "mode": survey_request.mode}
        )
    status = {ApiRequest.Outcome.INVALID: S.INVALID, ApiRequest.Outcome.AMBIGUOUS: S.AMBIGUOUS}.get(
        result.outcome, S.FAILED
    )
    return survey_request_transition(survey_request, to=status, attempts=attempts, status_detail=result.error_message)


def _retry_later(
    survey_request: SurveyRequest, *, message: str, retry_after: float | None, now: datetime
) -> SurveyRequest:
    """Exponential backoff with jitter, at least what Stella asked for, a bounded number of times."""
    attempts = survey_request.attempts + 1
    if attempts >= django_settings.STELLA_MAX_ATTEMPTS:
        return survey_request_transition(
            survey_request,
            to=S.FAILED,
            attempts=attempts,
            status_detail=f"Gave up after {attempts} attempts: {message}",
        )
    backoff = django_settings.STELLA_RETRY_BASE_SECONDS * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
    send_after = now + timedelta(seconds=min(max(backoff, retry_after or 0), 3600))
    survey_requests_wake_at(send_after)
    return survey_request_transition(
        survey_request,
        to=S.SCHEDULED,
        attempts=attempts,
        send_after=send_after,
        queued_at=None,
        claimed_at=None,
        status_detail=f"Attempt {attempts} failed, retrying: {message}",
    )


def _reject(
    survey_request: SurveyRequest, *, settings: IntegrationSettings, message: str, **fields: Any
) -> SurveyRequest:
    with transaction.atomic():
        survey_request = survey_request_transition(survey_request, to=S.INVALID, status_detail=message, **fields)
        survey_request_reject_locally(survey_request, settings=settings)
    return survey_request


def _survey_request_look_up(
    survey_request: SurveyRequest, *, settings: IntegrationSettings, now: datetime
) -> Teammate | None:
    """Fill in from Intercom's REST API what the webhook left out: channel, customer, teammate."""
    client = IntercomClient(settings.intercom_token)
    if not survey_request.channel:
        try:
            conversation = client.conversation(survey_request.conversation_id, url=survey_request.conversation_url)
        except IntercomNotFound:
            raise IntercomNotFound("Conversation not found in Intercom") from None
        survey_request.channel = conversation.channel or Channel.UNSUPPORTED
        survey_request.channel_source = conversation.channel_source or "unknown"
        customer = conversation.customer
        if customer and not survey_request.customer_id:
            survey_request.customer_id, survey_request.customer_role = customer.id or "", customer.role
        if customer and customer.email and not survey_request.customer_email:
            survey_request.customer_email, survey_request.customer_name = customer.email.lower(), customer.name or ""
        if conversation.assignee.kind == AssigneeKind.BOT and conversation.assignee.id == survey_request.teammate_id:
            survey_request.assignee_kind = AssigneeKind.BOT
    if not survey_request.customer_email and survey_request.customer_id:
        try:
            contact = client.contact(survey_request.customer_id)
        except IntercomNotFound:
            raise IntercomNotFound(STELLA_MESSAGES[SuppressionReason.INVALID_CUSTOMER]) from None
        survey_request.customer_email = (contact.email or "").lower()
        survey_request.customer_name = survey_request.customer_name or contact.name or ""
        survey_request.customer_role = contact.role
    if survey_request.teammate_id and not survey_request.teammate_email:
        teammate = teammate_look_up(survey_request.account_id, survey_request.teammate_id, client=client, now=now)
        survey_request.teammate_email = teammate.email
        survey_request.teammate_name = survey_request.teammate_name or teammate.name
        if teammate.is_bot:
            survey_request.assignee_kind = AssigneeKind.BOT
        return teammate
    return None


def teammate_look_up(account_id: int, intercom_id: str, *, client: IntercomClient, now: datetime) -> Teammate:
    """A teammate from the cache, fetched from Intercom when unknown or older than INTERCOM_TEAMMATE_TTL."""
    teammate = Teammate.objects.filter(account_id=account_id, intercom_id=intercom_id).first()
    fresh_since = now - timedelta(seconds=django_settings.INTERCOM_TEAMMATE_TTL)
    if teammate and teammate.email and teammate.fetched_at and teammate.fetched_at > fresh_since:
        return teammate
    try:
        admin = client.admin(intercom_id)
    except IntercomNotFound:
        raise IntercomNotFound(STELLA_MESSAGES[SuppressionReason.EMPLOYEE_NOT_FOUND]) from None
    teammate, _ = Teammate.objects.update_or_create(
        account_id=account_id,
        intercom_id=intercom_id,
        defaults={"name": admin.name, "email": (admin.email or "").lower(), "is_bot": admin.is_bot, "fetched_at": now},
    )
    return teammate


def survey_requests_send_due(*, now: datetime) -> int:
    """The sweep: queue every due request nobody holds, recover any a dead sender left behind,
    and wake up again for the next one coming due. Returns how many it queued."""
    survey_requests_recover_stale(now=now)
    requeue_before = now - timedelta(seconds=2 * django_settings.Q_CLUSTER["retry"])
    with transaction.atomic():
        due = (
            survey_requests_due(now=now)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=requeue_before))
            .filter(account__settings__sending_paused_at__isnull=True, account__settings__enabled=True)
        )
        ids = list(due.values_list("pk", flat=True)[:SWEEP_BATCH])
        SurveyRequest.objects.filter(pk__in=ids, status=S.SCHEDULED).update(queued_at=now)
        transaction.on_commit(lambda: survey_requests_queue(ids))
    next_due = SurveyRequest.objects.filter(status=S.SCHEDULED, send_after__gt=now).aggregate(at=Min("send_after"))[
        "at"
    ]
    if next_due is not None:
        survey_requests_wake_at(next_due)
    if ids:
        logger.info("survey_requests.queued", extra={"count": len(ids)})
    return len(ids)


def survey_requests_recover_stale(*, now: datetime) -> int:
    """Requests a sender claimed and never finished (it was killed, or timed out).

    If it had started its call to Stella, the call may have gone through: ambiguous,
    for a person to decide. Otherwise nothing reached Stella and it is sent again.
    """
    timeout = django_settings.Q_CLUSTER["timeout"]
    stale_before = now - timedelta(seconds=timeout + max(5, timeout // 2))
    recovered = 0
    for survey_request in SurveyRequest.objects.filter(status=S.SENDING, claimed_at__lt=stale_before):
        in_flight = survey_request.api_requests.filter(outcome=ApiRequest.Outcome.PENDING)
        attempts = survey_request.attempts + 1
        try:
            with transaction.atomic():
                if in_flight.exists():
                    message = "The sender stopped while waiting for Stella's answer: Stella may have accepted it"
                    survey_request_transition(survey_request, to=S.AMBIGUOUS, status_detail=message)
                    in_flight.update(outcome=ApiRequest.Outcome.AMBIGUOUS, error_message=message, finished_at=now)
                elif attempts >= django_settings.STELLA_MAX_ATTEMPTS:
                    message = (
                        f"The sender stopped {attempts} times before calling Stella; see the task queue's failures"
                    )
                    survey_request_transition(survey_request, to=S.FAILED, attempts=attempts, status_detail=message)
                else:  # nothing reached Stella: send it again, and count the try
                    survey_request_transition(
                        survey_request, to=S.SCHEDULED, queued_at=None, claimed_at=None, attempts=attempts
                    )
        except InvalidTransition:
            continue
        recovered += 1
        logger.warning(
            "survey_request.recovered", extra={"survey_request": survey_request.pk, "to": survey_request.status}
        )
    return recovered
