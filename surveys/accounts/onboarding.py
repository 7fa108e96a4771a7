"""Onboarding an account: where it stands (the checklist a CSM works through), asking Intercom whether
its token works, and one real test request to Stella.

The checklist only reads; checking the token and sending a test request go through the same services
and send path as everything else, so what they show is what the portal will do.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from integrations import messages
from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    IntercomMe,
    IntercomTokenMissing,
    IntercomTokenRejected,
)
from integrations.models import InboundWebhook
from integrations.vocabulary import AssigneeKind, Channel, email_normalised
from portal.crypto import SecretUndecryptable
from portal.redaction import mask_secret
from portal.text import plural
from surveys.accounts.account import integration_health_ensure, intercom_token_accept, intercom_token_reject
from surveys.decisions.decision import Rules, Stage
from surveys.decisions.rules import Decision
from surveys.delivery.sending import survey_request_send
from surveys.delivery.survey_requests import STATUS_FOR_DECISION, survey_request_decide, survey_request_reject_locally
from surveys.intake.handlers import HANDLERS
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
from surveys.reporting.attention import Problem, account_attention
from surveys.reporting.counts import count_survey_request_recorded
from surveys.selectors import account_test_week, send_candidates

logger = logging.getLogger(__name__)

Mode = IntegrationSettings.Mode
# The keys the sandbox's Stella accepts (sandbox/views.py, stella_requests), by the settings field they go in;
# it refuses any other key. Shown where keys are typed while the sandbox is on.
SANDBOX_KEY_PREFIXES = {"test_api_key": "sandbox-test-", "production_api_key": "sandbox-live-"}
# Every Intercom topic the portal acts on: the ones to subscribe to.
WEBHOOK_TOPICS: tuple[str, ...] = tuple(HANDLERS)
# A test request is unmistakable wherever it shows: its conversation id, its customer, its link.
TEST_CONVERSATION_PREFIX = "portal-test-"
TEST_CUSTOMER_NAME = "Portal test customer"
TEST_CLOSURE_ID = "portal-test"
UNMAPPED_TEAMMATES_SHOWN = 50
TEST_EMPLOYEES_SHOWN = 200  # Stella's employees offered for a test request
GO_LIVE_WEEK = timedelta(days=7)
ON_THE_SPOT_AGAIN = timedelta(
    minutes=1
)  # how soon the checklist asks Stella again for its employees  # as account_test_week counts


def sandbox_key_hint(field: str) -> str:
    """How a key the sandbox's Stella takes looks, for the field it goes in."""
    prefix = SANDBOX_KEY_PREFIXES[field]
    return f"Sandbox: its Stella takes any key starting {prefix} (e.g. {prefix}key-1) and refuses others."


class TestRequestRefused(Exception):
    """A test request can't be made for this account now; the message says why and what to do."""

    __test__ = False  # not a pytest test class, whatever its name


# ---- Asking Intercom about the token ----


@dataclass(frozen=True)
class IntercomCheck:
    """What Check now found, in words for the CSM; `ok` only when Intercom accepted the token for the account's
    own workspace."""

    ok: bool
    message: str
    me: IntercomMe | None = None


def account_intercom_check(account: Account, *, now: datetime) -> IntercomCheck:
    """Ask Intercom (GET /me) whether the account's token works and which workspace it is for, and record the
    answer: a refusal flags the token as rejected, an acceptance clears that and keeps the workspace. No token:
    nothing is asked, and nothing is flagged."""
    health = integration_health_ensure(account)
    try:
        me = IntercomClient(account.integration.intercom_token).me()
    except IntercomTokenMissing as exc:
        return IntercomCheck(ok=False, message=f"{exc}.")
    except IntercomTokenRejected:
        intercom_token_reject(account.pk, now=now)
        return IntercomCheck(ok=False, message="Intercom rejected the access token: connect with Intercom again.")
    except (IntercomError, SecretUndecryptable) as exc:
        # Unreachable, rate limited, an answer we can't read: nothing learnt about the token itself.
        return IntercomCheck(ok=False, message=f"Could not check the token: {exc}. Try again in a moment.")
    intercom_token_accept(health, checked_at=now, workspace_id=me.workspace_id, workspace_name=me.workspace_name)
    workspace = _workspace_words(me.workspace_id, me.workspace_name)
    if me.workspace_id != account.intercom_workspace_id:
        return IntercomCheck(
            ok=False,
            me=me,
            message=f"Intercom accepted the token, but it is for {workspace}, not this account's workspace "
            f"({account.intercom_workspace_id or 'none yet'}): connect with Intercom in the account's workspace.",
        )
    return IntercomCheck(ok=True, me=me, message=f"Intercom accepted the access token: it is for {workspace}.")


def _workspace_words(workspace_id: str, name: str) -> str:
    return f"workspace {workspace_id} ({name})" if name else f"workspace {workspace_id}"


# ---- A test request ----


def account_test_request_send(account: Account, *, by: str, employee_email: str, now: datetime) -> SurveyRequest:
    """Send Stella one real request with the account's test key, for a clearly synthetic customer and
    conversation, through the send path every survey takes; it shows under Test Requests with its outcome.

    `employee_email` is the teammate Stella credits (it must know them, or it refuses the request).
    Raises TestRequestRefused when it could not be a test now: the account is live, has no test key,
    or doesn't send (disabled, or paused).
    """
    integration = account.integration
    _refuse_unless_testable(account, integration=integration)
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


def _refuse_unless_testable(account: Account, *, integration: IntegrationSettings) -> None:
    if integration.mode != Mode.TEST:
        raise TestRequestRefused(
            f"{account} is live: its requests use the production key. Test requests are made in test mode."
        )
    if not integration.test_api_key:
        raise TestRequestRefused("Enter the test API key in the account's settings first.")
    if not integration.enabled:
        raise TestRequestRefused(f"{account} is disabled: enable it in the account's settings first.")
    health = _health(account)
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


# ---- The checklist: reads only ----

DONE, TODO, WARNING = "done", "todo", "warning"


@dataclass(frozen=True)
class Step:
    """One line of the checklist: done, to do, or done but with something to look at; and where it stands."""

    state: str
    summary: str

    @property
    def done(self) -> bool:
        return self.state == DONE


@dataclass(frozen=True)
class Checklist:
    account: Account
    intercom: Step
    webhook: Step
    arrivals: Step
    keys: Step
    secret: Step
    test_request: Step
    teammates: Step
    go_live: Step
    webhook_url: str
    topics: tuple[str, ...]
    last_webhook: InboundWebhook | None
    last_closure: SurveyRequest | None
    test_key: str  # masked
    production_key: str  # masked
    sandbox_key_hints: dict[str, str]  # by key field, while the sandbox is on
    last_test_call: ApiRequest | None
    cannot_send_test_request: str  # why not, or ""
    test_employee_email: str  # whom a test request credits, unless the CSM says otherwise
    test_employees: list[tuple[str, str]]  # Stella's employees a test request can credit: (email, name)
    sandbox_secret: str  # the API secret the sandbox's Stella takes, while the sandbox is on
    unmapped_teammates: list[Teammate]
    week: dict[str, int]
    problems: list[Problem]  # surveys/reporting/attention.py: what the account page and the front page list too

    @property
    def steps(self) -> list[Step]:
        return [
            self.intercom, self.webhook, self.arrivals, self.keys, self.secret, self.test_request, self.teammates,
            self.go_live,
        ]  # fmt: skip

    @property
    def employee_not_found(self) -> str:
        return messages.STELLA_EMPLOYEE_NOT_FOUND.words

    @property
    def done(self) -> int:
        return sum(step.done for step in self.steps)


def account_checklist(
    account: Account,
    *,
    webhook_url: str,
    sandbox: bool,
    fallback_employee_email: str = "",
    sandbox_secret: str = "",
    now: datetime | None = None,
) -> Checklist:
    """Where the account stands on each step of onboarding, and what to do next, for the checklist page.
    `fallback_employee_email`: whom a test request credits when neither Stella's employees nor the account's
    teammates say (the CSM); `sandbox_secret`: the API secret the sandbox's Stella takes, shown while it is on."""
    now = now or timezone.now()
    integration = account.integration
    last_webhook = (
        InboundWebhook.objects.filter(workspace_id=account.intercom_workspace_id)
        .defer("body", "headers")
        .order_by("-received_at")
        .first()
        if account.intercom_workspace_id
        else None
    )
    last_closure = (
        SurveyRequest.objects.filter(account=account)
        .exclude(conversation_id__startswith=TEST_CONVERSATION_PREFIX)
        .order_by("-closed_at")
        .first()
    )
    last_test_call = ApiRequest.objects.test_calls().filter(account=account).select_related("survey_request").first()
    unmapped = _unmapped_teammates(account)
    test_employees = account_test_employees(account, now=now)
    problems = account_attention(account, now=now)
    week = account_go_live_week(account)
    try:
        _refuse_unless_testable(account, integration=integration)
        cannot_test = ""
    except TestRequestRefused as exc:
        cannot_test = str(exc)
    return Checklist(
        account=account,
        intercom=_intercom_step(account, problems),
        webhook=_webhook_step(account, last_webhook),
        arrivals=_arrivals_step(last_closure),
        keys=_keys_step(integration),
        secret=_secret_step(integration),
        test_request=_test_request_step(last_test_call),
        teammates=_teammates_step(account, unmapped, problems),
        go_live=_go_live_step(integration, week),
        webhook_url=webhook_url,
        topics=WEBHOOK_TOPICS,
        last_webhook=last_webhook,
        last_closure=last_closure,
        test_key=mask_secret(integration.test_api_key),
        production_key=mask_secret(integration.production_api_key),
        sandbox_key_hints={field: sandbox_key_hint(field) for field in SANDBOX_KEY_PREFIXES} if sandbox else {},
        last_test_call=last_test_call,
        cannot_send_test_request=cannot_test,
        test_employee_email=_last_test_employee(last_test_call, test_employees)
        or account_test_employee_email(account)
        or (test_employees[0][0] if test_employees else fallback_employee_email),
        test_employees=test_employees,
        sandbox_secret=sandbox_secret if sandbox else "",
        unmapped_teammates=unmapped,
        week=week,
        problems=problems,
    )


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


def _last_test_employee(last_test_call: ApiRequest | None, employees: list[tuple[str, str]]) -> str:
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


def _health(account: Account) -> IntegrationHealth:
    """What the portal found for the account; nothing yet for an account that has no row (read, never created)."""
    return IntegrationHealth.objects.filter(account=account).first() or IntegrationHealth(account=account)


# The attention model's problems that are this step's (surveys/reporting/attention.py decides them).
INTERCOM_PROBLEMS = ("intercom_token_missing", "intercom_token_rejected", "intercom_other_workspace")


def _intercom_step(account: Account, problems: list[Problem]) -> Step:
    health = _health(account)
    token = account.integration.intercom_access_token
    if not account.intercom_workspace_id and not token:
        return Step(TODO, "No Intercom workspace yet: connect with Intercom.")
    if problem := next((problem for problem in problems if problem.code in INTERCOM_PROBLEMS), None):
        state = WARNING if problem.code == "intercom_other_workspace" else TODO
        return Step(state, f"{problem.text} {problem.fix}")
    token_workspace = health.intercom_token_workspace_id
    if not health.intercom_token_checked_at or not token_workspace:
        return Step(TODO, f"Access token stored ({mask_secret(token)}), not checked yet: Check now.")
    workspace = _workspace_words(token_workspace, health.intercom_token_workspace_name)
    return Step(DONE, f"Intercom accepts the access token: it is for {workspace}.")


def _webhook_step(account: Account, last_webhook: InboundWebhook | None) -> Step:
    if last_webhook is not None:
        return Step(DONE, "Intercom reaches the portal: webhooks from the workspace arrive.")
    workspace = account.intercom_workspace_id or "the account's workspace"
    return Step(
        TODO,
        f"No webhook received yet from {workspace}: in Intercom's Developer Hub, set the app's webhook URL to "
        "the one below and subscribe to these topics.",
    )


def _arrivals_step(last_closure: SurveyRequest | None) -> Step:
    if last_closure is not None:
        return Step(DONE, "Closed conversations arrive and are decided on.")
    return Step(TODO, "No closed conversation yet: close one in Intercom, and it shows here.")


def _keys_step(integration: IntegrationSettings) -> Step:
    if integration.test_api_key and integration.production_api_key:
        return Step(DONE, "Both Stella API keys are stored.")
    missing = " and ".join(
        label
        for label, key in (("test", integration.test_api_key), ("production", integration.production_api_key))
        if not key
    )
    return Step(TODO, f"Enter the {missing} API key{'s' if ' and ' in missing else ''} in the account's settings.")


def _secret_step(integration: IntegrationSettings) -> Step:
    if integration.stella_api_secret:
        return Step(DONE, "Stella's API secret is stored: the portal reads Stella's employees and feedback.")
    return Step(
        TODO,
        "Enter Stella's API secret in the account's settings. Without it the portal can't list Stella's employees "
        f"(to warn before a survey is refused as {messages.STELLA_EMPLOYEE_NOT_FOUND.words}) or read back delivery and "
        "feedback.",
    )


def _test_request_step(last_test_call: ApiRequest | None) -> Step:
    if last_test_call is None:
        return Step(TODO, "No test request yet: send one, and see it under Test Requests.")
    if last_test_call.outcome == ApiRequest.Outcome.SENT:
        return Step(DONE, "Stella accepted the last test request.")
    if last_test_call.outcome == ApiRequest.Outcome.PENDING:
        return Step(TODO, "The last test request is under way.")
    return Step(WARNING, "Stella did not accept the last test request: see why below, fix it and send another.")


def _unmapped_teammates(account: Account) -> list[Teammate]:
    """Teammates Stella is told about by email only, those Stella refused as unknown employees first."""
    refused = SurveyRequest.objects.filter(
        account=account,
        teammate_id=OuterRef("intercom_id"),
        status=SurveyRequest.Status.INVALID,
    ).filter(Q(reason=messages.EMPLOYEE_UNKNOWN.code) | Q(detail_code=messages.STELLA_EMPLOYEE_NOT_FOUND.code))
    teammates = (
        Teammate.objects.filter(account=account, stella_custom_id="")
        .annotate(refused_by_stella=Exists(refused))
        .order_by("-refused_by_stella", "name")
    )
    return list(teammates[:UNMAPPED_TEAMMATES_SHOWN])


def _teammates_step(account: Account, unmapped: list[Teammate], attention: list[Problem]) -> Step:
    """Done only when every teammate seen is one Stella will recognise (bots aside): not before any is seen,
    nor while one is unchecked or unknown."""
    teammate_problems = [
        problem
        for problem in attention
        if problem.code == "unknown_teammates"
        or (problem.code.startswith("invalid:") and getattr(messages.message(problem.code[8:]), "per_teammate", False))
    ]
    if teammate_problems:
        return Step(TODO, " ".join(f"{problem.text} {problem.fix}" for problem in teammate_problems))
    refused = sum(bool(getattr(teammate, "refused_by_stella", False)) for teammate in unmapped)
    bots = sum(teammate.is_bot for teammate in unmapped)
    if refused or bots:
        problems = [f"Stella answered {messages.STELLA_EMPLOYEE_NOT_FOUND.words} for {plural(refused, 'teammate')}"]
        problems = problems if refused else []
        if bots:
            problems.append(
                f"{plural(bots, 'bot')} without a Stella employee (Stella needs one even to record do-not-send)"
            )
        return Step(TODO, "; ".join(problems) + ": give them their Stella custom id, or add them in Stella.")
    people = Teammate.objects.filter(account=account, is_bot=False)
    seen = people.count()
    if not seen:
        return Step(TODO, "No teammate seen yet: teammates appear here as their conversations close.")
    unchecked = people.filter(stella_match=Teammate.StellaMatch.NOT_CHECKED).count()
    if unchecked:
        return Step(
            TODO,
            f"{plural(unchecked, 'teammate')} of {seen} not checked against Stella's employees yet: store Stella's "
            "API secret, then Sync employees now (on the account's page).",
        )
    return Step(DONE, f"Stella knows all {plural(seen, 'teammate')} seen so far.")


def _go_live_step(integration: IntegrationSettings, week: dict[str, int]) -> Step:
    if integration.mode == Mode.LIVE:
        return Step(DONE, "Live: surveys go to customers with the production key.")
    if not integration.production_api_key:
        return Step(TODO, "In test mode. Enter the production key before going live.")
    if not week["succeeded"]:
        return Step(TODO, "In test mode, and no test request succeeded in the last 7 days: test before going live.")
    return Step(TODO, f"Ready to go live: {plural(week['succeeded'], 'test request')} succeeded in the last 7 days.")
