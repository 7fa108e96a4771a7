"""A batch of stored webhooks acted on together: its closures read what they need in a few queries for the whole batch,
are decided by the one decision, and written in one statement each, with their counts and their send tasks, which
the batch's owner pushes once it has committed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from django.db import IntegrityError, transaction

from integrations.intercom.payloads import IntercomNotification
from integrations.models import InboundWebhook
from integrations.vocabulary import email_normalised
from portal.queue import TaskBatch
from surveys.decisions.decision import (
    Rules,
    Stage,
)
from surveys.decisions.rules import Decision
from surveys.delivery.survey_requests import (
    STATUS_FOR_DECISION,
    survey_request_build,
    survey_request_cancel_if_overtaken,
    survey_request_decide,
    survey_request_quiet_detail,
    survey_request_retag_if_overtaken,
    survey_request_supersede_older,
    survey_requests_apply_event,
    survey_requests_queue,
    survey_requests_reject_locally,
)
from surveys.models import (
    Account,
    ConversationEvent,
    SurveyRequest,
)
from surveys.reporting.counts import (
    CountChanges,
    count_survey_request_recorded,
)
from surveys.selectors import (
    IncomingClosure,
    IntakeReads,
)

logger = logging.getLogger(__name__)

Status = SurveyRequest.Status
T = TypeVar("T")


class IntakeBatch:
    """A batch of webhooks acted on together, in their order: closes recorded with every rule's verdict (if to be
    sent, due at close + channel delay), events applied to waiting closes, anything else written through `write`.

    What closes need to know is read for the whole batch at once (selectors.IntakeReads) and kept current in memory;
    their records, invalid calls and sends are written together by `flush()`, in a few statements however many.
    An event or another write reads and writes the database itself: the batch flushes its closes first and reads
    again after, so its caller keeps no protocol but to flush once at the end. Count changes go to `counts`, tasks
    to `tasks` (the caller applies and pushes them once its transaction commits); `now` is the batch's time.

    One close per conversation waits at a time: a newer close cancels an older one still waiting,
    and an older close arriving late is recorded as cancelled.
    """

    def __init__(
        self, closures: list[IncomingClosure], *, now: datetime, counts: CountChanges, tasks: TaskBatch
    ) -> None:
        self.closures = closures
        self.now, self.counts, self.tasks = now, counts, tasks
        self.pending: list[SurveyRequest] = []
        self._reads: IntakeReads | None = None

    @property
    def reads(self) -> IntakeReads:
        if self._reads is None:  # when the first close comes: a batch of events never reads
            self._reads = IntakeReads(self.closures)
        return self._reads

    def close(
        self, *, account: Account, notification: IntercomNotification, webhook: InboundWebhook | None
    ) -> SurveyRequest:
        """Record one close (saved by the next flush); the record of it already made, if there is one."""
        conversation = notification.conversation
        assert conversation is not None, "a closed-conversation notification carries its conversation"
        integration = account.integration
        history = self.reads.history(incoming_closure(account, notification))
        closure_id = conversation.closure.part_id if conversation.closure else f"notification:{notification.id}"
        if recorded := history.survey_request_for(closure_id):
            logger.info("survey_request.closure_duplicate", extra={"conversation_id": conversation.id})
            return recorded
        if any(other.pk is None for other in history.survey_requests):
            self.flush()  # an older close of the conversation this batch recorded: what follows may change it
        survey_request = survey_request_build(
            conversation,
            account=account,
            webhook=webhook,
            closed_at=notification.created_at,
            closure_id=closure_id,
            earlier_tags=history.tags_added(before=notification.created_at),
        )
        self.reads.sample_place_take(survey_request)
        survey_request_supersede_older(history, closed_at=survey_request.closed_at, counts=self.counts)
        known = self.reads.known(survey_request)
        rules = Rules.of(integration)
        survey_request_decide(survey_request, rules=rules, known=known, stage=Stage.KNOWN)
        survey_request.status = STATUS_FOR_DECISION[Decision(survey_request.decision)]
        survey_request_cancel_if_overtaken(survey_request, history=history)
        survey_request_retag_if_overtaken(survey_request, history=history, rules=rules, known=known)
        survey_request_quiet_detail(survey_request, integration=integration)
        if survey_request.status == Status.SCHEDULED and survey_request.send_after <= self.now:
            survey_request.queued_at = self.now  # due now: queued by the flush
        self.pending.append(survey_request)
        self.reads.recorded(survey_request)
        count_survey_request_recorded(survey_request, counts=self.counts)
        return survey_request

    def event(
        self,
        *,
        account: Account,
        conversation_id: str,
        kind: ConversationEvent.Kind,
        occurred_at: datetime,
        tags: list[str],
        webhook: InboundWebhook | None,
    ) -> int:
        """Record a reopen, reply, snooze, deletion or tag, and apply it to the conversation's waiting closes; how
        many it changed."""
        return self.write(
            lambda: survey_requests_apply_event(
                ConversationEvent.objects.create(
                    account=account,
                    conversation_id=conversation_id,
                    kind=kind,
                    occurred_at=occurred_at,
                    tags=tags,
                    inbound_webhook=webhook,
                ),
                counts=self.counts,
                now=self.now,
            )
        )

    def write(self, act: Callable[[], T]) -> T:
        """Do something that reads and writes the database itself, after the closes recorded so far are saved; the
        closes after it read what it changed."""
        self.flush()
        try:
            return act()
        finally:
            self._reads = None

    def flush(self) -> list[SurveyRequest]:
        """Save what the batch recorded, log the invalid ones' calls, and queue those due now once committed."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        try:
            with transaction.atomic():
                SurveyRequest.objects.bulk_create(pending)
        except IntegrityError:
            if len(pending) > 1:
                raise  # the intake acts on the batch's webhooks one at a time instead
            # The same closure recorded meanwhile by a concurrent worker: the first record stands.
            logger.info("survey_request.closure_duplicate", extra={"conversation_id": pending[0].conversation_id})
            count_survey_request_recorded(pending[0], delta=-1, counts=self.counts)
            return []
        for survey_request in pending:
            logger.info(
                "survey_request.recorded",
                extra={
                    "survey_request": survey_request.pk,
                    "status": survey_request.status,
                    "reason": survey_request.reason,
                },
            )
        invalid = [sr for sr in pending if sr.status == Status.INVALID]
        survey_requests_reject_locally(invalid, counts=self.counts, now=self.now)
        due = [survey_request.pk for survey_request in pending if survey_request.queued_at]
        if due:
            transaction.on_commit(lambda: survey_requests_queue(due, tasks=self.tasks))
        return pending


def incoming_closure(account: Account, notification: IntercomNotification) -> IncomingClosure:
    """What IntakeReads needs of a closed-conversation notification."""
    conversation = notification.conversation
    assert conversation is not None, "a closed-conversation notification carries its conversation"
    customer = conversation.customer
    return IncomingClosure(
        account=account,
        conversation_id=conversation.id,
        customer_email=email_normalised(customer.email) if customer else "",
        customer_id=(customer.id or "") if customer else "",
        closed_at=notification.created_at,
        teammate_id=conversation.assignee.id or "",
    )
