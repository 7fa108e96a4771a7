"""A test request: one real request to Stella with an account's test key, for a clearly synthetic customer and
conversation, through the send path every survey takes; whom it credits; and the week of testing go-live weighs."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from integrations.vocabulary import AssigneeKind, Channel, email_normalised
from surveys.decisions.decision import Rules, Stage
from surveys.decisions.rules import Decision
from surveys.delivery.sending import survey_request_send
from surveys.delivery.survey_requests import STATUS_FOR_DECISION, survey_request_decide, survey_request_reject_locally
from surveys.loop.employees import stella_employees_sync
from surveys.models import (
    Account,
    ApiRequest,
    IntegrationHealth,
    IntegrationSettings,
    StellaEmployee,
    StellaSyncState,
    SurveyRequest,
    Teammate,
)
from surveys.reporting.counts import count_survey_request_recorded
from surveys.selectors import account_test_week, send_candidates

logger = logging.getLogger("surveys.accounts.onboarding")  # the name its log lines have always had

Mode = IntegrationSettings.Mode
# A test request is unmistakable wherever it shows: its conversation id, its customer, its link.
TEST_CONVERSATION_PREFIX = "portal-test-"
TEST_CUSTOMER_NAME = "Portal test customer"
TEST_CLOSURE_ID = "portal-test"
TEST_EMPLOYEES_SHOWN = 200  # Stella's employees offered for a test request
GO_LIVE_WEEK = timedelta(days=7)
ON_THE_SPOT_AGAIN = timedelta(
    minutes=1
)  # how soon the checklist asks Stella again for its employees  # as account_test_week counts


class TestRequestRefused(Exception):
    """A test request can't be made for this account now; the message says why and what to do."""

    __test__ = False  # not a pytest test class, whatever its name


def account_test_request_send(account: Account, *, by: str, employee_email: str, now: datetime) -> SurveyRequest:
    """Send Stella one real request with the account's test key, for a clearly synthetic customer and
    conversation, through the send path every survey takes; it shows under Test Requests with its outcome.

    `employee_email` is the teammate Stella credits (it must know them, or it refuses the request).
    Raises TestRequestRefused when it could not be a test now: the account is live, has no test key,
    or doesn't send (disabled, or paused).
    """
    integration = account.integration
    refuse_unless_testable(account, integration=integration)
    try:
        validate_email(employee_email)
    except ValidationError:
        raise TestRequestRefused("Enter the email of a teammate Stella knows, to credit the test request to.") from None
    survey_request = _test_survey_request(account, employee_email=email_normalised(employee_email), now=now)
    with transaction.atomic():
        survey_request.save()
        count_survey_request_recorded(survey_request)
        if survey_request.status == SurveyRequest.Status.INVALID:  # the account's own rules refused it
            survey_request_reject_locally(survey_request)
    logger.info("onboarding.test_request", extra={"account": account.pk, "survey_request": survey_request.pk, "by": by})
    if survey_request.status == SurveyRequest.Status.SCHEDULED:
        survey_request = survey_request_send(survey_request.pk, now=now)
    return survey_request


def refuse_unless_testable(account: Account, *, integration: IntegrationSettings) -> None:
    if integration.mode != Mode.TEST:
        raise TestRequestRefused(
            f"{account} is live: its requests use the production key. Test requests are made in test mode."
        )
    if not integration.test_api_key:
        raise TestRequestRefused("Enter the test API key in the account's settings first.")
    if not integration.enabled:
        raise TestRequestRefused(f"{account} is disabled: enable it in the account's settings first.")
    health = health_of(account)
    if health.sending_paused_at:
        raise TestRequestRefused(
            f"Sending is paused ({health.sending_paused_reason}): enter a new key or switch mode first."
        )


def _test_survey_request(account: Account, *, employee_email: str, now: datetime) -> SurveyRequest:
    """The record of a closure that never happened, due now, decided by the account's rules like any other.
    Marked queued, so the sweep leaves it to this send."""
    integration = account.integration
    conversation_id = f"{TEST_CONVERSATION_PREFIX}{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    channel = next((c for c in (Channel.EMAIL, Channel.CHAT) if c in integration.enabled_channels), Channel.EMAIL)
    # A teammate the account knows by that email keeps their Stella custom id, as in a real send.
    teammate = Teammate.objects.filter(account=account, email__iexact=employee_email).first()
    survey_request = SurveyRequest(
        account=account,
        conversation_id=conversation_id,
        conversation_url=f"https://example.com/{conversation_id}",
        closure_id=TEST_CLOSURE_ID,
        closed_at=now,
        channel=channel,
        channel_source="portal_test",
        assignee_kind=AssigneeKind.ADMIN,
        teammate_id=teammate.intercom_id if teammate else "",
        teammate_name=teammate.name if teammate else "",
        teammate_email=employee_email,
        customer_name=TEST_CUSTOMER_NAME,
        # Its own address each time, so no suppression window holds the next test back.
        customer_email=f"{conversation_id}@example.com",
        mode=Mode.TEST,
        send_after=now,
        delay_ends_at=now,
        queued_at=now,
    )
    rules = Rules.of(integration)
    known = send_candidates(survey_request, rules=rules)
    survey_request_decide(survey_request, rules=rules, known=known, stage=Stage.SEND, looked_up=True)
    survey_request.status = STATUS_FOR_DECISION[Decision(survey_request.decision)]
    return survey_request


def account_test_employee_email(account: Account) -> str:
    """Whom a test request credits by default: a teammate of the account (one with a Stella custom id first)."""
    return (
        Teammate.objects.filter(account=account, is_bot=False)
        .exclude(email="")
        .order_by("-stella_custom_id", "name")
        .values_list("email", flat=True)
        .first()
        or ""
    )


def account_test_employees(account: Account, *, now: datetime) -> list[tuple[str, str]]:
    """Stella's active employees a test request can credit (by email: the test request names one), as the employee
    sync last listed them; none listed yet and the account has its API secret: read from Stella on the spot."""
    employees = StellaEmployee.objects.filter(account=account, active=True).exclude(email="")
    integration = account.integration
    if not employees.exists() and integration.stella_api_secret and integration.employee_sync_enabled:
        state = StellaSyncState.objects.filter(account=account).first()
        # Never synced, and not tried in the last minute: a checklist reloaded while Stella is down waits for it.
        if state is None or (
            state.employees_synced_at is None
            and (state.employees_attempted_at is None or state.employees_attempted_at < now - ON_THE_SPOT_AGAIN)
        ):
            stella_employees_sync(account, now=now)
    return list(employees.order_by("name", "email").values_list("email", "name")[:TEST_EMPLOYEES_SHOWN])


def last_test_employee(last_test_call: ApiRequest | None, employees: list[tuple[str, str]]) -> str:
    """The employee the last test request credited, if Stella still lists them: the CSM's last choice."""
    if last_test_call is None:
        return ""
    email = last_test_call.survey_request.teammate_email
    return email if not employees or email in {address for address, _ in employees} else ""


def account_go_live_week(account: Account) -> dict[str, int]:
    """The last 7 days of testing, as go-live weighs them: a test request Stella accepted settles the test requests
    that failed before it (a wrong email tried first, say), as a resend settles a failure."""
    week = account_test_week(account)
    last_ok = (
        ApiRequest.objects.test_calls()
        .filter(account=account, outcome=ApiRequest.Outcome.SENT)
        .filter(survey_request__conversation_id__startswith=TEST_CONVERSATION_PREFIX)
        .aggregate(at=Max("created_at"))["at"]
    )
    if last_ok is None:
        return week
    settled = (
        ApiRequest.objects.filter(account=account, mode=Mode.TEST, created_at__gte=timezone.now() - GO_LIVE_WEEK)
        .filter(created_at__lt=last_ok, survey_request__conversation_id__startswith=TEST_CONVERSATION_PREFIX)
        .filter(ApiRequest.unresolved_condition())
        .aggregate(
            invalid=Count("pk", filter=Q(outcome=ApiRequest.Outcome.INVALID)),
            other=Count("pk", filter=~Q(outcome__in=[ApiRequest.Outcome.SENT, ApiRequest.Outcome.INVALID])),
        )
    )
    return {**week, "invalid": week["invalid"] - settled["invalid"], "other": week["other"] - settled["other"]}


def health_of(account: Account) -> IntegrationHealth:
    """What the portal found for the account; nothing yet for an account that has no row (read, never created)."""
    return IntegrationHealth.objects.filter(account=account).first() or IntegrationHealth(account=account)
