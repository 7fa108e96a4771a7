"""Everything a survey request can do. Grep `survey_request_` to see it all."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations import messages
from integrations.intercom.payloads import Conversation
from integrations.models import InboundWebhook
from integrations.stella.client import FeedbackRequest
from integrations.vocabulary import email_normalised
from portal.queue import TaskBatch
from surveys.decisions.decision import (
    CANCELLING_KINDS,
    CancelReason,
    Known,
    Rules,
    Stage,
    cancel_reason,
    closure_decide,
    customer_zone_found,
)
from surveys.decisions.rules import Decision, InvalidReason
from surveys.delivery.dispatch import survey_requests_admit
from surveys.models import (
    TRANSITIONS,
    Account,
    ApiRequest,
    ConversationEvent,
    IntegrationSettings,
    SurveyRequest,
    SurveyRequestQuerySet,
    Teammate,
)
from surveys.reporting.counts import (
    CountChanges,
    count_api_request_recorded,
    count_survey_request_transition,
)
from surveys.selectors import (
    ConversationHistory,
    closure_of,
    send_candidates,
    teammate_custom_ids,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

Status = SurveyRequest.Status
STATUS_FOR_DECISION = {
    Decision.SEND: Status.SCHEDULED,
    Decision.DO_NOT_SEND: Status.SCHEDULED,
    Decision.SUPPRESSED: Status.SUPPRESSED,
    Decision.INVALID: Status.INVALID,
}
RESENDABLE = (Status.INVALID, Status.FAILED, Status.AMBIGUOUS)


class InvalidTransition(Exception):
    pass


def survey_request_transition(
    survey_request: SurveyRequest,
    *,
    to: str,
    expected: Mapping[str, Any] | None = None,
    counts: CountChanges | None = None,
    **fields: Any,
) -> SurveyRequest:
    """Move a request to another status, if it still is as we last saw it (and as `expected` says).

    The conditional update is also the claim: of two workers moving the same request,
    exactly one changes a row; the other gets InvalidTransition. It matches the status and
    the last change's time, so a change made meanwhile (a tag turning the request into
    do-not-send) is never overwritten by a mover that didn't see it. The status page's
    counts move in the same transaction.
    """
    current, decision = survey_request.status, survey_request.decision
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(f"{current} → {to} is not allowed")
    fields = {"status": to, "updated_at": timezone.now(), **fields}
    if "status_detail" in fields and "detail_code" not in fields:
        fields["detail_code"] = messages.code_of(fields["status_detail"])
    # No savepoint (two statements a move): nothing to undo when the update changes no row, and the
    # InvalidTransition that says so is raised outside the block, so it never spoils a caller's transaction.
    with transaction.atomic(savepoint=False):
        changed = SurveyRequest.objects.filter(
            pk=survey_request.pk, status=current, updated_at=survey_request.updated_at, **(expected or {})
        ).update(**fields)
        if changed:
            for name, value in fields.items():
                setattr(survey_request, name, value)
            count_survey_request_transition(survey_request, old_status=current, old_decision=decision, counts=counts)
    if not changed:
        raise InvalidTransition(f"survey request {survey_request.pk} is no longer {current}")
    return survey_request


def survey_request_build(
    conversation: Conversation,
    *,
    account: Account,
    webhook: InboundWebhook | None,
    closed_at: datetime,
    closure_id: str,
    earlier_tags: tuple[str, ...] = (),
) -> SurveyRequest:
    """The unsaved record of one closure, as the webhook describes it, due at close + channel delay.
    `earlier_tags`: first-message tags that arrived in tag events before the close."""
    integration = account.integration
    customer = conversation.customer
    assignee = conversation.assignee
    # After the channel delay and any quiet hours it runs into: until then a reopen or reply still cancels.
    delay_ends_at = Rules.of(integration).send_after(closed_at)
    survey_request = SurveyRequest(
        account=account,
        inbound_webhook=webhook,
        conversation_id=conversation.id,
        conversation_url=conversation.url,
        closure_id=closure_id,
        closed_at=closed_at,
        channel=conversation.channel or "",
        channel_source=conversation.channel_source,
        assignee_kind=assignee.kind,
        teammate_id=assignee.id or "",
        teammate_name=assignee.name or "",
        teammate_email=email_normalised(assignee.email),
        customer_id=(customer.id or "") if customer else "",
        customer_role=customer.role if customer else "",
        customer_name=(customer.name or "") if customer else "",
        customer_email=email_normalised(customer.email) if customer else "",
        mode=integration.mode,
        send_after=delay_ends_at,
        delay_ends_at=delay_ends_at,
        tags=list(dict.fromkeys(conversation.do_not_send_tag_candidates + earlier_tags)),
        team_id=conversation.team_id,
        last_admin_reply_at=conversation.last_admin_reply_at,
    )
    return survey_request_clip(survey_request)


def survey_request_quiet_detail(survey_request: SurveyRequest, *, integration: IntegrationSettings) -> None:
    """A request that waits for the quiet hours to end says so, and when it goes, in the time zone they are kept in
    (the account's, or the customer's where the account keeps them so and the send's look-up found it)."""
    if survey_request.status not in (Status.SCHEDULED, Status.SENDING):
        return
    if survey_request.send_after <= survey_request.closed_at + integration.channel_delay:
        return
    rules = Rules.of(integration)
    quiet = rules.quiet_hours_in(survey_request.customer_time_zone)
    zone = quiet.zone if quiet else ZoneInfo(integration.time_zone)
    whose = ""
    if rules.customer_zone:
        whose = (
            " (the customer's time zone)"
            if customer_zone_found(survey_request.customer_time_zone)
            else " (the account's: where Intercom says the customer is doesn't name one time zone)"
        )
    goes = survey_request.send_after.astimezone(zone)
    survey_request.status_detail = f"{messages.QUIET_HOURS.words}: goes at {goes:%Y-%m-%d %H:%M} {zone.key}{whose}"
    survey_request.detail_code = messages.QUIET_HOURS.code


def survey_request_supersede_older(
    history: ConversationHistory, *, closed_at: datetime, counts: CountChanges | None = None
) -> None:
    """A newer close is the one surveyed: cancel the conversation's older closes still waiting, unless something
    earlier during their delay cancelled them first (decision.cancel_reason: the first in time wins)."""
    for older in history.survey_requests:
        if older.closed_at >= closed_at or older.status not in (Status.SCHEDULED, Status.CANCELLED):
            continue
        reason = _cancel_reason(older, history=history, newer_closes=[closed_at])
        if reason is None:
            continue  # closed again after its delay: it goes out, and the newer close finds it surveyed
        if older.status == Status.SCHEDULED:
            with suppress(InvalidTransition):  # a sender took it a moment ago: too late to supersede
                survey_request_transition(older, to=Status.CANCELLED, reason=reason, status_detail="", counts=counts)
        elif older.reason in CANCELLED_BY_TIME and reason != older.reason:
            survey_request_relabel(older, reason=reason)  # an event arrived first, but happened after this close


# Cancellations the first-in-time rule may relabel once an earlier event or close arrives late (not a person's act).
CANCELLED_BY_TIME = frozenset(CancelReason) - {CancelReason.ERASED, CancelReason.STOPPED_IN_INTERCOM}


def _cancel_reason(
    survey_request: SurveyRequest, *, history: ConversationHistory, newer_closes: list[datetime]
) -> CancelReason | None:
    """decision.cancel_reason over what the batch knows of the conversation."""
    return cancel_reason(
        closed_at=survey_request.closed_at,
        delay_ends_at=survey_request.delay_ends_at,
        events=[(event.occurred_at, event.kind) for event in history.events],
        newer_closes=[*newer_closes, *(other.closed_at for other in history.survey_requests)],
    )


def survey_request_relabel(survey_request: SurveyRequest, *, reason: str) -> None:
    """Say why a cancelled request was cancelled, now that what came first is known: its outcome is unchanged."""
    SurveyRequest.objects.filter(pk=survey_request.pk, status=Status.CANCELLED).update(reason=reason)
    survey_request.reason = reason


def survey_request_cancel_if_overtaken(survey_request: SurveyRequest, *, history: ConversationHistory) -> None:
    """A new record that would wait is cancelled if a newer close, or a reopen, reply, snooze or
    deletion during its delay, is already known (webhooks arrive out of order)."""
    if survey_request.status != Status.SCHEDULED:
        return
    if reason := _cancel_reason(survey_request, history=history, newer_closes=[]):
        survey_request.status = Status.CANCELLED
        survey_request.reason, survey_request.status_detail = reason, ""


def survey_request_retag_if_overtaken(
    survey_request: SurveyRequest, *, history: ConversationHistory, rules: Rules, known: Sequence[Known]
) -> None:
    """A new record that would wait takes the first-message tags a tag event during its delay added, if that event
    is already known (it arrived first), and the rules decide again, as `survey_requests_retag` would have."""
    if survey_request.status != Status.SCHEDULED:
        return
    # Up to the moment it comes due: an event then is taken in before the send (as replay.Replay.event has it).
    late = history.tags_added(since=survey_request.closed_at, before=survey_request.send_after + timedelta.resolution)
    if not set(late) - set(survey_request.tags):
        return
    survey_request.tags = list(dict.fromkeys(survey_request.tags + list(late)))
    survey_request_decide(survey_request, rules=rules, known=known, stage=Stage.KNOWN)
    survey_request.status = STATUS_FOR_DECISION[Decision(survey_request.decision)]


def survey_request_feedback_request(
    survey_request: SurveyRequest, *, integration: IntegrationSettings, employee_custom_id: str = ""
) -> FeedbackRequest:
    """The request as Stella takes it."""
    return FeedbackRequest(
        channel=survey_request.channel,
        conversation_id=survey_request.conversation_id,
        conversation_url=survey_request.conversation_url,
        customer_name=survey_request.customer_name,
        customer_email=survey_request.customer_email,
        employee_email=survey_request.teammate_email,
        employee_custom_id=employee_custom_id,
        tags=tuple(survey_request.tags),
        do_not_send=survey_request.do_not_send,
        brand=integration.brand,
        language=integration.language,
    )


def survey_request_reject_locally(
    survey_request: SurveyRequest, *, counts: CountChanges | None = None, now: datetime | None = None
) -> ApiRequest:
    """Log a request the rules found invalid as Stella would, in Stella's words, without calling Stella."""
    return survey_requests_reject_locally([survey_request], counts=counts, now=now)[0]


def survey_requests_reject_locally(
    survey_requests: list[SurveyRequest], *, counts: CountChanges | None = None, now: datetime | None = None
) -> list[ApiRequest]:
    """`survey_request_reject_locally` for several at once, in two statements."""
    if not survey_requests:
        return []
    custom_ids = teammate_custom_ids({(sr.account_id, sr.teammate_id) for sr in survey_requests})
    now = now or timezone.now()
    api_requests = ApiRequest.objects.bulk_create(
        ApiRequest(
            survey_request=survey_request,
            account_id=survey_request.account_id,
            mode=survey_request.mode,
            request_body=survey_request_feedback_request(
                survey_request,
                integration=survey_request.account.integration,
                employee_custom_id=custom_ids.get((survey_request.account_id, survey_request.teammate_id), ""),
            ).as_json(),
            outcome=ApiRequest.Outcome.INVALID,
            error_message=survey_request.status_detail,
            error_code=survey_request.reason or messages.code_of(survey_request.status_detail),
            finished_at=now,
        )
        for survey_request in survey_requests
    )
    for api_request in api_requests:
        count_api_request_recorded(api_request, counts=counts)
    return api_requests


def survey_requests_queue(
    survey_request_ids: list[int], *, tasks: TaskBatch | None = None, now: datetime | None = None
) -> None:
    """Hand requests to the task queue (or to `tasks`, pushed by its owner), within their accounts' share of it
    (surveys/delivery/dispatch.py): those over it wait for a slot. Call it once they are committed (on_commit)."""
    survey_requests_admit(survey_request_ids, now=now or timezone.now(), tasks=tasks)


def survey_requests_apply_event(
    event: ConversationEvent, *, counts: CountChanges | None = None, now: datetime | None = None
) -> int:
    """A reopen, reply, snooze or deletion cancels a close still waiting out its delay;
    a first-message tag is added to it and the rules decide again. Returns how many changed."""
    if event.kind in ConversationEvent.CANCELLING:
        return survey_requests_cancel_for(event, counts=counts)
    if event.kind == ConversationEvent.Kind.TAGGED:
        return survey_requests_retag(event, counts=counts, now=now)
    return 0


def _waiting_before(event: ConversationEvent, statuses: Q) -> SurveyRequestQuerySet:
    """The conversation's closes in `statuses` (still waiting) that the event came after."""
    return SurveyRequest.objects.filter(
        statuses, account=event.account, conversation_id=event.conversation_id, closed_at__lte=event.occurred_at
    )


def survey_requests_cancel_for(event: ConversationEvent, *, counts: CountChanges | None = None) -> int:
    """Cancel the conversation's closes whose channel delay the event fell in; one cancelled by a newer close
    that came after the event says it was the event (the first in time wins)."""
    cancelled = 0
    reason = CANCELLING_KINDS[event.kind]
    overtaken = Q(status=Status.SCHEDULED) | Q(status=Status.CANCELLED, reason=CancelReason.SUPERSEDED)
    for survey_request in _waiting_before(event, overtaken).filter(delay_ends_at__gt=event.occurred_at):
        if survey_request.status == Status.CANCELLED:
            if _superseded_after(survey_request, event):
                survey_request_relabel(survey_request, reason=reason)
            continue
        with suppress(InvalidTransition):  # a sender took it a moment ago: the event came too late
            survey_request_transition(
                survey_request, to=Status.CANCELLED, reason=reason, status_detail="", counts=counts
            )
            cancelled += 1
    return cancelled


def _superseded_after(survey_request: SurveyRequest, event: ConversationEvent) -> bool:
    """Whether every newer close of the conversation came after the event: then the event cancelled it first. A newer
    close counts whatever became of it since (the event may have just cancelled it too: it still came first)."""
    newer = SurveyRequest.objects.filter(
        account_id=survey_request.account_id,
        conversation_id=survey_request.conversation_id,
        closed_at__gt=survey_request.closed_at,
        closed_at__lte=event.occurred_at,
    )
    return not newer.exists()


def survey_requests_retag(
    event: ConversationEvent, *, counts: CountChanges | None = None, now: datetime | None = None
) -> int:
    """Add first-message tags to the conversation's waiting closes and let the rules decide again."""
    changed = 0
    for survey_request in _waiting_before(event, Q(status=Status.SCHEDULED)).select_related("account__integration"):
        rules = Rules.of(survey_request.account.integration)
        survey_request.tags = list(dict.fromkeys(survey_request.tags + event.tags))
        known = send_candidates(survey_request, rules=rules)
        survey_request_decide(survey_request, rules=rules, known=known, stage=Stage.KNOWN)
        to = STATUS_FOR_DECISION[Decision(survey_request.decision)]
        survey_request.detail_code = ""
        if to == Status.SCHEDULED:  # still waiting: for the quiet hours to end, it may say
            survey_request_quiet_detail(survey_request, integration=survey_request.account.integration)
        with suppress(InvalidTransition):
            survey_request_transition(
                survey_request,
                to=to,
                tags=survey_request.tags,
                decision=survey_request.decision,
                reason=survey_request.reason,
                verdicts=survey_request.verdicts,
                status_detail=survey_request.status_detail,
                detail_code=survey_request.detail_code or messages.code_of(survey_request.status_detail),
                counts=counts,
            )
            if survey_request.status == Status.INVALID:
                survey_request_reject_locally(survey_request, counts=counts, now=now)
            changed += 1
    return changed


def survey_request_decide(
    survey_request: SurveyRequest,
    *,
    rules: Rules,
    known: Sequence[Known],
    stage: Stage,
    looked_up: bool = False,
    employee_unknown: bool = False,
) -> None:
    """The one decision (decision.closure_decide) on what is known now, written on the request; `looked_up`:
    Intercom has been asked, nothing is pending; `employee_unknown`: Stella's employees, as last synced, don't
    include the one the request names."""
    closure = closure_of(survey_request, looked_up=looked_up, employee_unknown=employee_unknown)
    fate = closure_decide(closure, rules, [other for other in known if other is not survey_request], stage)
    survey_request.verdicts = fate.verdicts_stored
    survey_request.decision = fate.decision
    survey_request.reason = fate.reason.value if fate.reason else ""
    survey_request.status_detail = fate.error_message


def survey_request_clip(survey_request: SurveyRequest) -> SurveyRequest:
    """Intercom sets no length on names; cut what would not fit its column rather than lose the closure."""
    for field in SurveyRequest._meta.concrete_fields:
        value = getattr(survey_request, field.attname)
        max_length = field.max_length
        if max_length and isinstance(value, str) and len(value) > max_length:
            setattr(survey_request, field.attname, value[:max_length])
    return survey_request


def survey_requests_resend(survey_requests: list[SurveyRequest], *, by: str) -> list[SurveyRequest]:
    """Send invalid, failed or ambiguous requests again, once the cause is fixed: each goes through
    the rules again and, if it passes, makes a new call (a new row in the log). Ambiguous ones may
    already have reached the customer: callers ask a person to confirm first."""
    resent = []
    now = timezone.now()
    # A person resending a request the portal held back as unknown to Stella says the teammate is fixed (mapped,
    # or added in Stella): Stella answers for them again, until the next employee sync says otherwise.
    unknown = [sr for sr in survey_requests if sr.status in RESENDABLE and sr.reason == InvalidReason.EMPLOYEE_UNKNOWN]
    for survey_request in unknown:
        Teammate.objects.filter(account_id=survey_request.account_id, intercom_id=survey_request.teammate_id).update(
            stella_match=Teammate.StellaMatch.NOT_CHECKED
        )
    for survey_request in survey_requests:
        if survey_request.status not in RESENDABLE:
            continue
        try:
            survey_request_transition(
                survey_request,
                to=Status.SCHEDULED,
                send_after=now,
                queued_at=now,
                claimed_at=None,
                attempts=0,
                status_detail=f"Resent by {by}",
            )
        except InvalidTransition:
            continue
        resent.append(survey_request)
    ids = [survey_request.pk for survey_request in resent]
    transaction.on_commit(lambda: survey_requests_queue(ids))
    logger.info("survey_requests.resent", extra={"count": len(ids), "by": by})
    return resent


def survey_request_stop_in_intercom(
    survey_request: SurveyRequest, *, admin_id: str, admin_name: str, now: datetime | None = None
) -> bool:
    """A teammate pressed Don't survey this conversation in the inbox app: a request still waiting ends, cancelled,
    without a call to Stella; who and when are kept in its verdicts and said in its status detail. False when it
    no longer waits (sent meanwhile, or stopped already: a replayed press changes nothing)."""
    if survey_request.status != Status.SCHEDULED:
        return False
    now = now or timezone.now()
    who = admin_name or f"Intercom teammate {admin_id}"
    stopped = {"admin_id": admin_id, "admin_name": admin_name, "at": now.isoformat()}
    try:
        survey_request_transition(
            survey_request,
            to=Status.CANCELLED,
            reason=CancelReason.STOPPED_IN_INTERCOM,
            status_detail=f"Stopped by {who} on {timezone.localtime(now):%Y-%m-%d %H:%M %Z}."[:500],
            detail_code=CancelReason.STOPPED_IN_INTERCOM.value,
            verdicts={**survey_request.verdicts, CancelReason.STOPPED_IN_INTERCOM.value: stopped},
        )
    except InvalidTransition:  # a sender took it a moment ago: too late to stop
        return False
    logger.info("survey_requests.stopped_in_intercom", extra={"survey_request": survey_request.pk})
    return True
