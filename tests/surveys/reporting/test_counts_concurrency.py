"""The daily counts stay exact while many transactions move them at once: on PostgreSQL, where writers
really run in parallel (SQLite lets one write at a time, so its writers never race)."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import connection, transaction

from surveys.decisions.rules import Decision
from surveys.delivery.survey_requests import survey_request_transition
from surveys.models import Account, ApiRequest, DailyCount, SurveyRequest
from surveys.reporting.counts import (
    count_api_request_finished,
    count_api_request_recorded,
    count_survey_request_recorded,
    daily_counts_rebuild,
)
from tests.factories import AccountFactory, SurveyRequestFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: SQLite lets one transaction write at a time, so counts can't race there",
    ),
    pytest.mark.django_db(transaction=True),
]

S = SurveyRequest.Status
THREADS = 4
ACCOUNTS = 2
DAYS = [date(2025, 11, 24) + timedelta(days=n) for n in range(2)]
# What happens to a request after it is recorded waiting, one transition per step. Every thread takes
# step n of all its requests before any thread takes step n + 1, and all walk the accounts and days in
# the same order, so they keep moving the same account's and day's counts at the same moment.
PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (Decision.SEND, (S.SENDING, S.SENT)),
    (Decision.DO_NOT_SEND, (S.SENDING, S.SENT)),
    (Decision.SEND, (S.SENDING, S.FAILED)),
    (Decision.SEND, (S.SENDING, S.AMBIGUOUS)),
    (Decision.SEND, (S.SENDING, S.INVALID, S.SCHEDULED)),  # Stella refused it; resent, waiting again
    (Decision.SEND, (S.SENDING, S.SCHEDULED, S.SENDING, S.SENT)),  # a retryable error, then sent
    (Decision.SEND, (S.CANCELLED,)),
    (Decision.SEND, (S.SUPPRESSED,)),
    (Decision.SEND, (S.INVALID, S.SCHEDULED, S.SENDING, S.SENT)),  # rejected here, fixed, resent
)

CALL_OUTCOMES = {
    S.SENT: ApiRequest.Outcome.SENT,
    S.INVALID: ApiRequest.Outcome.INVALID,
    S.SCHEDULED: ApiRequest.Outcome.RETRY,
    S.FAILED: ApiRequest.Outcome.FAILED,
    S.AMBIGUOUS: ApiRequest.Outcome.AMBIGUOUS,
}


def counts() -> dict[tuple[int, date, str], int]:
    return {(a, d, k): n for a, d, k, n in DailyCount.objects.values_list("account_id", "day", "kind", "count") if n}


def record(account: Account, day: date, thread: int, number: int, decision: str) -> SurveyRequest:
    """As intake does: the request and its count in one transaction."""
    conversation = f"{account.pk}-{day:%m%d}-{thread}-{number}"
    with transaction.atomic():
        survey_request = SurveyRequestFactory(
            account=account,
            closed_at=datetime.combine(day, time(12), tzinfo=UTC),
            conversation_id=conversation,
            closure_id=f"close-{conversation}",
            customer_id=f"contact-{conversation}",
            decision=decision,
        )
        count_survey_request_recorded(survey_request)
    return survey_request


def move(survey_request: SurveyRequest, to: str, calls: dict[int, ApiRequest]) -> None:
    """As the sender does: a call is logged (and counted) with the claim, and finished with the outcome."""
    with transaction.atomic():
        if to == S.SENDING:
            survey_request_transition(survey_request, to=to)
            calls[survey_request.pk] = api_request = ApiRequest.objects.create(
                survey_request=survey_request,
                account_id=survey_request.account_id,
                mode=survey_request.mode,
                url="https://stella.example/v1/requests",
            )
            count_api_request_recorded(api_request)
        elif to == S.INVALID and survey_request.status == S.SCHEDULED:  # rejected here, before any call
            survey_request_transition(survey_request, to=to)
            count_api_request_recorded(
                ApiRequest.objects.create(
                    survey_request=survey_request,
                    account_id=survey_request.account_id,
                    mode=survey_request.mode,
                    outcome=ApiRequest.Outcome.INVALID,
                )
            )
        elif survey_request.status == S.SENDING:
            api_request = calls.pop(survey_request.pk)
            api_request.outcome = CALL_OUTCOMES[to]
            api_request.save(update_fields=["outcome"])
            count_api_request_finished(api_request)
            survey_request_transition(survey_request, to=to)
        else:
            survey_request_transition(survey_request, to=to)


def work(thread: int, accounts: list[Account], barrier: threading.Barrier) -> None:
    try:
        barrier.wait()
        paths = [
            (record(account, day, thread, number, decision), steps)
            for account in accounts
            for day in DAYS
            for number, (decision, steps) in enumerate(PATHS)
        ]
        calls: dict[int, ApiRequest] = {}
        for step in range(max(len(steps) for _, steps in PATHS)):
            barrier.wait()
            for survey_request, steps in paths:
                if step < len(steps):
                    move(survey_request, steps[step], calls)
    except BaseException:
        barrier.abort()  # the others stop waiting for this thread, and fail too
        raise
    finally:
        connection.close()


def test_counts_stay_exact_while_many_transactions_move_them_at_once():
    accounts = AccountFactory.create_batch(ACCOUNTS)
    barrier = threading.Barrier(THREADS, timeout=60)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for done in [pool.submit(work, thread, accounts, barrier) for thread in range(THREADS)]:
            done.result()

    live = counts()
    daily_counts_rebuild()
    rebuilt = counts()
    outcomes = Counter(SurveyRequest.outcome_of(steps[-1], decision) for decision, steps in PATHS)
    assert {(a, d, k): n for (a, d, k), n in rebuilt.items() if k in outcomes} == {
        (account.pk, day, outcome): n * THREADS
        for account in accounts
        for day in DAYS
        for outcome, n in outcomes.items()
    }, "the log holds every request, at the end of its path"
    pairs = {key: (live.get(key, 0), rebuilt.get(key, 0)) for key in live.keys() | rebuilt.keys()}
    drifted = sorted((key, pair) for key, pair in pairs.items() if pair[0] != pair[1])
    assert live == rebuilt, (
        f"{len(drifted)} of {len(rebuilt)} counts drifted, {sum(live.values())} kept of {sum(rebuilt.values())} "
        f"in the log; (kept, from the log): {drifted}"
    )
