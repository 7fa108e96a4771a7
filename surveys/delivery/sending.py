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

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from integrations import messages
from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    IntercomNotFound,
    IntercomRateLimited,
    IntercomTokenRejected,
)
from integrations.intercom.location import time_zone_of
from integrations.intercom.payloads import Author, Conversation, Customer
from integrations.stella.client import StellaClient, StellaResult
from integrations.vocabulary import AssigneeKind, Channel, email_normalised
from portal.crypto import SecretUndecryptable
from portal.logging import log_context
from surveys.accounts.account import integration_pause, intercom_token_reject
from surveys.accounts.teammates import teammate_look_up
from surveys.decisions.decision import UNKNOWN_ZONE, Rules, Stage, cancel_reason
from surveys.decisions.rules import Decision
from surveys.delivery.dispatch import survey_requests_dispatch
from surveys.delivery.survey_requests import (
    InvalidTransition,
    survey_request_clip,
    survey_request_decide,
    survey_request_feedback_request,
    survey_request_quiet_detail,
    survey_request_reject_locally,
    survey_request_transition,
)
from surveys.models import ApiRequest, IntegrationSettings, SurveyRequest, Teammate
from surveys.reporting.counts import count_api_request_finished, count_api_request_recorded
from surveys.selectors import conversation_events, send_candidates

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
# What the send path may have learnt or decided: saved while the request is claimed.
DECIDED_FIELDS = [
    "channel", "channel_source", "assignee_kind", "teammate_name", "teammate_email", "customer_id",
    "customer_role", "customer_name", "customer_email", "tags", "decision", "reason", "verdicts", "mode",
    "teammate_replies", "teammate_id", "attribution", "customer_time_zone",
]  # fmt: skip
# What a finished call fills in on its ApiRequest row.
RESULT_FIELDS = [
    "status_code", "response_body", "duration_ms", "outcome", "error_message", "error_code", "finished_at"
]  # fmt: skip


def survey_request_send(survey_request_id: int, *, now: datetime) -> SurveyRequest:
    """Send one due survey request to Stella, unless something cancelled, paused or took it first.

    Looks up in Intercom what the webhook left out, lets the rules decide again with it,
    then makes exactly one call and records its outcome. The claim, a conditional update
    from scheduled to sending, is committed with the row of the call before the call is made.
    """
    mapping = Teammate.objects.filter(account_id=OuterRef("account_id"), intercom_id=OuterRef("teammate_id"))
    requests = SurveyRequest.objects.select_related("account__integration", "account__health").annotate(
        employee_custom_id=Subquery(mapping.values("stella_custom_id")[:1]),
        employee_stella_match=Subquery(mapping.values("stella_match")[:1]),
    )
    for _ in range(2):  # a change made while we looked (a tag, say) costs one more look
        survey_request = requests.get(pk=survey_request_id)
        account = survey_request.account
        if account.health.sending_paused_at or not account.integration.enabled:
            # Leave it for the sweep, which queues it again once a CSM has fixed the key or enabled the account.
            SurveyRequest.objects.filter(pk=survey_request.pk, status=Status.SCHEDULED).update(queued_at=None)
            return survey_request
        if survey_request.status != Status.SCHEDULED or survey_request.send_after > now:
            return survey_request
        if _postponed_for_quiet_hours(survey_request, integration=account.integration, now=now):
            return survey_request
        try:
            with log_context(account=account.pk, survey_request=survey_request.pk):  # on every line the send logs
                return _send(survey_request, integration=account.integration, now=now)
        except InvalidTransition:
            continue  # another sender took it, a reopen cancelled it, or a tag changed it: look again
        except SecretUndecryptable as exc:
            return _pause_for_secret(survey_request, reason=str(exc), now=now)
    survey_request.refresh_from_db()
    return survey_request


def _postponed_for_quiet_hours(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime
) -> bool:
    """A send due during the account's quiet hours (set since it was recorded, or a retry or resend falling in them)
    waits for them to end, saying so; the sweep's poller queues it then. Kept in the customer's time zone, they
    wait for the look-up that finds it (`_teammate_at_send`)."""
    if Rules.of(integration).zone_wanted(survey_request.customer_time_zone):
        return False
    goes = _quiet_until(survey_request, integration=integration, now=now)
    if goes is None:
        return False
    survey_request.send_after = goes
    survey_request_quiet_detail(survey_request, integration=integration)
    SurveyRequest.objects.filter(pk=survey_request.pk, status=Status.SCHEDULED).update(
        send_after=goes,
        queued_at=None,
        status_detail=survey_request.status_detail,
        detail_code=messages.QUIET_HOURS.code,
    )
    return True


def _quiet_until(survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime) -> datetime | None:
    """When the quiet hours a send due `now` falls in end (kept in the customer's time zone where the account keeps
    them so and it is known), or None if it falls in none."""
    quiet = Rules.of(integration).quiet_hours_in(survey_request.customer_time_zone)
    goes = quiet.ends_after(now) if quiet else now
    return goes if goes > now else None


def _pause_for_secret(survey_request: SurveyRequest, *, reason: str, now: datetime) -> SurveyRequest:
    """A key or token the portal can't decrypt fails every send of the account alike: pause it, and leave the
    request unsent for the sweep to queue again once the account resumes."""
    integration_pause(survey_request.account_id, reason=reason, now=now)
    if survey_request.status != Status.SENDING:
        SurveyRequest.objects.filter(pk=survey_request.pk, status=Status.SCHEDULED).update(queued_at=None)
        return survey_request
    try:  # claimed for the look-ups: give it back
        return survey_request_transition(
            survey_request, to=Status.SCHEDULED, queued_at=None, claimed_at=None, status_detail=reason
        )
    except InvalidTransition:  # taken meanwhile: its new holder finds the account paused
        return survey_request


def _send(survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime) -> SurveyRequest:
    """Look up, check, decide again, then call: each step may end the send with the request's new state."""
    before = {field: getattr(survey_request, field) for field in DECIDED_FIELDS}
    teammate = _teammate_at_send(survey_request, integration=integration, now=now)
    if isinstance(teammate, SurveyRequest):
        return teammate  # the look-up itself decided where the request stands
    custom_id, stella_match = teammate
    # The last sync of Stella's employees knows this teammate won't be recognised: no call wasted on it.
    unknown = integration.employee_sync_enabled and stella_match == Teammate.StellaMatch.UNMATCHED
    if finished := _cancel_or_decide(survey_request, integration=integration, employee_unknown=unknown):
        return finished
    changed = {field: value for field in DECIDED_FIELDS if (value := getattr(survey_request, field)) != before[field]}
    if survey_request.decision == Decision.INVALID:
        return _reject(survey_request, integration=integration, message=survey_request.status_detail, **changed)
    if survey_request.decision == Decision.SUPPRESSED:
        return survey_request_transition(survey_request, to=Status.SUPPRESSED, **changed)
    return _call_stella(survey_request, integration=integration, custom_id=custom_id, changed=changed, now=now)


def _teammate_at_send(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime
) -> tuple[str, str] | SurveyRequest:
    """The teammate's Stella custom id and match, as the request's query annotated them or, when the webhook left
    something out, as Intercom's look-up found them (the request taken first); or the request's new state if the
    look-up ended the send."""
    custom_id = getattr(survey_request, "employee_custom_id", None) or ""
    stella_match = getattr(survey_request, "employee_stella_match", None) or ""
    zone_wanted = Rules.of(integration).zone_wanted(survey_request.customer_time_zone)
    if not survey_request.needs_lookup and not _replies_wanted(survey_request, integration) and not zone_wanted:
        return custom_id, stella_match
    # Looking up costs Intercom calls and time: take the request first.
    survey_request_transition(survey_request, to=Status.SENDING, claimed_at=now)
    looked_up = _look_up(survey_request, integration=integration, now=now)
    if isinstance(looked_up, SurveyRequest):
        return looked_up
    if zone_wanted and (waiting := _wait_for_customers_quiet_hours(survey_request, integration=integration, now=now)):
        return waiting
    if looked_up:
        return looked_up.stella_custom_id, looked_up.stella_match
    return custom_id, stella_match


def _wait_for_customers_quiet_hours(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime
) -> SurveyRequest | None:
    """Now that the customer's time zone is known: a send due inside their quiet hours is given back to wait for
    them to end, and a reopen or reply until then still cancels it (its delay lasts until it goes)."""
    goes = _quiet_until(survey_request, integration=integration, now=now)
    if goes is None:
        return None
    survey_request.send_after = survey_request.delay_ends_at = goes
    survey_request_quiet_detail(survey_request, integration=integration)
    return survey_request_transition(
        survey_request,
        to=Status.SCHEDULED,
        send_after=goes,
        delay_ends_at=goes,
        queued_at=None,
        claimed_at=None,
        customer_time_zone=survey_request.customer_time_zone,
        status_detail=survey_request.status_detail,
    )


def _look_up(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime
) -> Teammate | SurveyRequest | None:
    """What Intercom says, or the request's new state if Intercom's answer ends this send."""
    try:
        return survey_request_look_up(survey_request, integration=integration, now=now)
    except IntercomRateLimited as exc:
        return survey_request_transition(
            survey_request,
            to=Status.SCHEDULED,
            send_after=exc.reset_at,
            queued_at=None,
            claimed_at=None,
            status_detail=str(exc),
        )
    except IntercomTokenRejected as exc:
        intercom_token_reject(survey_request.account_id, now=now)
        return _reject(survey_request, integration=integration, message=str(exc))
    except IntercomNotFound as exc:
        return _reject(survey_request, integration=integration, message=str(exc))
    except IntercomError as exc:
        return _retry_later(survey_request, message=str(exc), retry_after=None, now=now)


def _cancel_or_decide(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, employee_unknown: bool
) -> SurveyRequest | None:
    """Cancel the request if the conversation came back during its delay, or closed again; otherwise the one
    decision, at the send, with all that is known now. Returns the request only if it was cancelled."""
    survey_request_clip(survey_request)
    rules = Rules.of(integration)
    known = send_candidates(survey_request, rules=rules)
    # Without a channel delay no event can cancel a send, and tags are already on the request.
    events = conversation_events(survey_request) if survey_request.delay_ends_at > survey_request.closed_at else []
    reason = cancel_reason(
        closed_at=survey_request.closed_at,
        delay_ends_at=survey_request.delay_ends_at,
        events=[(event.occurred_at, event.kind) for event in events],
        newer_closes=[other.closed_at for other in known if other.conversation_id == survey_request.conversation_id],
    )
    if reason is not None:
        return survey_request_transition(survey_request, to=Status.CANCELLED, reason=reason, status_detail="")
    survey_request_decide(
        survey_request, rules=rules, known=known, stage=Stage.SEND, looked_up=True, employee_unknown=employee_unknown
    )
    survey_request.mode = integration.mode
    return None


def _call_stella(
    survey_request: SurveyRequest,
    *,
    integration: IntegrationSettings,
    custom_id: str,
    changed: dict[str, Any],
    now: datetime,
) -> SurveyRequest:
    """Exactly one call: its row is committed with the claim before it goes out, its outcome after."""
    client = StellaClient(base_url=integration.stella_base_url)
    api_key = integration.api_key_for(survey_request.mode)
    feedback_request = survey_request_feedback_request(
        survey_request, integration=integration, employee_custom_id=custom_id
    )
    api_request = ApiRequest(
        survey_request=survey_request,
        account_id=survey_request.account_id,
        mode=survey_request.mode,
        url=client.requests_url,
        request_headers=client.logged_headers(api_key),
        request_body=feedback_request.as_json(),
        outcome=ApiRequest.Outcome.PENDING,
    )
    # Short transactions around the call, none during it: nothing waits on the database while Stella thinks.
    with transaction.atomic():
        if survey_request.status == Status.SCHEDULED:
            survey_request_transition(survey_request, to=Status.SENDING, claimed_at=now, **changed)
        else:  # claimed before the look-ups: still ours only if nobody took it since (the sweep gives up on us)
            survey_request_transition(survey_request, to=Status.SENDING, expected={"claimed_at": now}, **changed)
        api_request.save()
        count_api_request_recorded(api_request)
    result = client.create_request(api_request.request_body, api_key=api_key)
    logger.info(
        "stella.request.sent",
        extra={"survey_request": survey_request.pk, "outcome": result.outcome, "status": result.status_code},
    )
    with transaction.atomic():
        api_request_finish(api_request, result)
        return _apply(survey_request, result, integration=integration, now=now)


def api_request_finish(api_request: ApiRequest, result: StellaResult) -> ApiRequest:
    """Record on the call's row what came of it."""
    api_request.status_code = result.status_code
    api_request.response_body = result.response_text
    api_request.duration_ms = result.duration_ms
    api_request.outcome = result.outcome
    api_request.error_message = result.error_message
    api_request.error_code = messages.code_of(result.error_message)
    api_request.finished_at = result.finished_at
    api_request.save(update_fields=RESULT_FIELDS)
    count_api_request_finished(api_request)
    return api_request


def _apply(
    survey_request: SurveyRequest, result: StellaResult, *, integration: IntegrationSettings, now: datetime
) -> SurveyRequest:
    attempts = survey_request.attempts + 1
    if result.outcome == ApiRequest.Outcome.SENT:
        return survey_request_transition(
            survey_request, to=Status.SENT, sent_at=timezone.now(), attempts=attempts, status_detail=""
        )
    if result.outcome == ApiRequest.Outcome.RETRY:
        return _retry_later(survey_request, message=result.error_message, retry_after=result.retry_after, now=now)
    if result.outcome == ApiRequest.Outcome.INVALID and result.status_code in (401, 403):
        # Every other call with this key would fail the same way: stop until a CSM changes it.
        integration_pause(
            survey_request.account_id, reason=f"Stella rejected the {survey_request.mode} API key", now=now
        )
    status = {ApiRequest.Outcome.INVALID: Status.INVALID, ApiRequest.Outcome.AMBIGUOUS: Status.AMBIGUOUS}.get(
        result.outcome, Status.FAILED
    )
    return survey_request_transition(survey_request, to=status, attempts=attempts, status_detail=result.error_message)


def _retry_later(
    survey_request: SurveyRequest, *, message: str, retry_after: float | None, now: datetime
) -> SurveyRequest:
    """Exponential backoff with jitter, at least what Stella asked for, a bounded number of times."""
    attempts = survey_request.attempts + 1
    if attempts >= settings.STELLA_MAX_ATTEMPTS:
        return survey_request_transition(
            survey_request,
            to=Status.FAILED,
            attempts=attempts,
            status_detail=f"Gave up after {attempts} attempts: {message}",
        )
    backoff = settings.STELLA_RETRY_BASE_SECONDS * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
    send_after = now + timedelta(seconds=min(max(backoff, retry_after or 0), 3600))
    return (
        survey_request_transition(  # the cluster's poller queues it again at send_after (surveys/delivery/on_time.py)
            survey_request,
            to=Status.SCHEDULED,
            attempts=attempts,
            send_after=send_after,
            queued_at=None,
            claimed_at=None,
            status_detail=f"Attempt {attempts} failed, retrying: {message}",
        )
    )


def _reject(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, message: str, **fields: Any
) -> SurveyRequest:
    with transaction.atomic():
        survey_request = survey_request_transition(survey_request, to=Status.INVALID, status_detail=message, **fields)
        survey_request_reject_locally(survey_request)
    return survey_request


def survey_request_look_up(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, now: datetime
) -> Teammate | None:
    """Fill in from Intercom's REST API what the webhook left out: channel, customer, teammate.
    Returns the teammate when it was looked up."""
    client = IntercomClient(integration.intercom_token, base_url=integration.intercom_api_url)
    if not survey_request.channel or _replies_wanted(survey_request, integration):
        conversation = _look_up_conversation(survey_request, client=client)
        if integration.attribution == LAST_REPLIER:
            _credit_last_replier(survey_request, conversation.last_replier)
    _look_up_customer(survey_request, integration=integration, client=client)
    if survey_request.teammate_id and not survey_request.teammate_email:
        teammate = teammate_look_up(survey_request.account_id, survey_request.teammate_id, client=client, now=now)
        survey_request.teammate_email = teammate.email
        survey_request.teammate_name = survey_request.teammate_name or teammate.name
        if teammate.is_bot:
            survey_request.assignee_kind = AssigneeKind.BOT
        return teammate
    return None


def _replies_wanted(survey_request: SurveyRequest, integration: IntegrationSettings) -> bool:
    """The account's minimum of teammate replies needs them counted, or its credit the last teammate to reply: only
    Intercom's REST API has the conversation's replies."""
    wanted = integration.min_teammate_replies > 0 or integration.attribution == LAST_REPLIER
    return wanted and survey_request.teammate_replies is None


def _credit_last_replier(survey_request: SurveyRequest, replier: Author | None) -> None:
    """Name the last human teammate to reply instead of the assignee (looked up next, by id, for their email and
    Stella custom id), and say why."""
    if survey_request.assignee_kind == AssigneeKind.BOT:
        return  # a bot's conversation is recorded flagged do not send, whoever replied
    if replier is None or not replier.id:
        survey_request.attribution = "No teammate replied: the assignee at close is credited"
        return
    assigned = ASSIGNED_WORDS.get(survey_request.assignee_kind)
    survey_request.attribution = (
        f"The last teammate to reply is credited (the conversation was {assigned})"
        if assigned
        else "The last teammate to reply is credited"
    )
    if replier.id != survey_request.teammate_id:
        survey_request.teammate_id, survey_request.teammate_name = replier.id, replier.name or ""
        survey_request.teammate_email = ""
    survey_request.assignee_kind = AssigneeKind.ADMIN


# How the conversation was assigned at close, for the words of `attribution`.
ASSIGNED_WORDS: dict[str, str] = {AssigneeKind.TEAM: "assigned to a team", AssigneeKind.NOBODY: "assigned to nobody"}
LAST_REPLIER = "last_replier"


def _look_up_conversation(survey_request: SurveyRequest, *, client: IntercomClient) -> Conversation:
    try:
        conversation = client.conversation(survey_request.conversation_id, url=survey_request.conversation_url)
    except IntercomNotFound:
        raise IntercomNotFound(messages.INTERCOM_CONVERSATION_NOT_FOUND.words) from None
    if not survey_request.channel:
        survey_request.channel = conversation.channel or Channel.UNSUPPORTED
        survey_request.channel_source = conversation.channel_source or "unknown"
    # Counted now; the team and the last reply stay as the close had them (the rules read them at close).
    survey_request.teammate_replies = conversation.teammate_replies
    _customer_fill(survey_request, conversation.customer)
    if conversation.assignee.kind == AssigneeKind.BOT and conversation.assignee.id == survey_request.teammate_id:
        survey_request.assignee_kind = AssigneeKind.BOT
    return conversation


def _customer_fill(survey_request: SurveyRequest, customer: Customer | None) -> None:
    """What the webhook left out of the customer, from the conversation Intercom returned."""
    if customer is None:
        return
    if not survey_request.customer_id:
        survey_request.customer_id, survey_request.customer_role = customer.id or "", customer.role
    if customer.email and not survey_request.customer_email:
        survey_request.customer_email = email_normalised(customer.email)
        survey_request.customer_name = customer.name or ""


def _look_up_customer(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, client: IntercomClient
) -> None:
    """The customer's email where the webhook left it out, and their time zone where the quiet hours are kept in it."""
    zone_wanted = Rules.of(integration).zone_wanted(survey_request.customer_time_zone)
    if not survey_request.customer_id:
        if zone_wanted:
            survey_request.customer_time_zone = UNKNOWN_ZONE  # no contact to ask: the account's zone
        return
    if survey_request.customer_email:
        if zone_wanted:
            survey_request.customer_time_zone = _customer_zone(survey_request, client=client)
        return
    try:
        contact = client.contact(survey_request.customer_id)
    except IntercomNotFound:
        raise IntercomNotFound(messages.INVALID_CUSTOMER.words) from None
    survey_request.customer_email = email_normalised(contact.email)
    survey_request.customer_name = survey_request.customer_name or contact.name or ""
    survey_request.customer_role = contact.role
    survey_request.customer_time_zone = time_zone_of(contact.location) or UNKNOWN_ZONE


def _customer_zone(survey_request: SurveyRequest, *, client: IntercomClient) -> str:
    """Where Intercom says a customer whose email is known is, as a time zone: asked only for the quiet hours, so a
    contact gone or an Intercom down means the account's zone, never a failed send or a Stella attempt spent."""
    try:
        contact = client.contact(survey_request.customer_id)
    except (IntercomRateLimited, IntercomTokenRejected):
        raise  # the send waits for the limit, or the account for a CSM, as for any look-up
    except IntercomError:
        return UNKNOWN_ZONE
    return time_zone_of(contact.location) or UNKNOWN_ZONE


def survey_requests_send_due(*, now: datetime) -> int:
    """The sweep, every minute: queue every due request nobody holds, and recover any a dead sender left
    behind. The safety net: the cluster's poller queues requests the moment they come due (surveys/delivery/on_time.py),
    this finds what it missed (it was down, the account was paused, a queue message was lost). Returns how
    many it queued."""
    survey_requests_recover_stale(now=now)
    requeue_before = now - timedelta(seconds=2 * settings.Q_CLUSTER["retry"])
    # Queued so long ago that its message was lost: its slot is given back, and it waits its turn again.
    SurveyRequest.objects.filter(status=Status.SCHEDULED, queued_at__lt=requeue_before).update(queued_at=None)
    ids = survey_requests_dispatch(now=now)
    if ids:
        logger.info("survey_requests.queued", extra={"count": len(ids)})
    return len(ids)


def survey_requests_recover_stale(*, now: datetime) -> int:
    """Requests a sender claimed and never finished (it was killed, or timed out).

    If it had started its call to Stella, the call may have gone through: ambiguous,
    for a person to decide. Otherwise nothing reached Stella and it is sent again.
    """
    timeout = settings.Q_CLUSTER["timeout"]
    stale_before = now - timedelta(seconds=timeout + max(5, timeout // 2))
    recovered = 0
    for survey_request in SurveyRequest.objects.filter(status=Status.SENDING, claimed_at__lt=stale_before):
        in_flight = survey_request.api_requests.filter(outcome=ApiRequest.Outcome.PENDING)
        attempts = survey_request.attempts + 1
        try:
            with transaction.atomic():
                if in_flight.exists():
                    message = "The sender stopped while waiting for Stella's answer: Stella may have accepted it"
                    survey_request_transition(survey_request, to=Status.AMBIGUOUS, status_detail=message)
                    in_flight.update(outcome=ApiRequest.Outcome.AMBIGUOUS, error_message=message, finished_at=now)
                elif attempts >= settings.STELLA_MAX_ATTEMPTS:
                    message = (
                        f"The sender stopped {attempts} times before calling Stella; "
                        "the request's admin page lists what it raised"
                    )
                    survey_request_transition(
                        survey_request, to=Status.FAILED, attempts=attempts, status_detail=message
                    )
                else:  # nothing reached Stella: send it again, and count the try
                    survey_request_transition(
                        survey_request, to=Status.SCHEDULED, queued_at=None, claimed_at=None, attempts=attempts
                    )
        except InvalidTransition:
            continue
        recovered += 1
        logger.warning(
            "survey_request.recovered", extra={"survey_request": survey_request.pk, "to": survey_request.status}
        )
    return recovered
