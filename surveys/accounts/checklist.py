"""The onboarding checklist a CSM works through: where an account stands on each step, and what to do next.
Reads only (but for one read of Stella's employees on the spot, before a first sync: test_request.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from integrations import messages
from integrations.models import InboundWebhook
from portal.redaction import mask_secret
from portal.text import plural
from surveys.accounts.test_request import (
    TEST_CONVERSATION_PREFIX,
    TestRequestRefused,
    account_go_live_week,
    account_test_employee_email,
    account_test_employees,
    health_of,
    last_test_employee,
    refuse_unless_testable,
)
from surveys.intake.handlers import HANDLERS
from surveys.models import (
    Account,
    ApiRequest,
    IntegrationSettings,
    SurveyRequest,
    Teammate,
)
from surveys.reporting.attention import Problem, account_attention

Mode = IntegrationSettings.Mode
# The keys the sandbox's Stella accepts (sandbox/views.py, stella_requests), by the settings field they go in;
# it refuses any other key. Shown where keys are typed while the sandbox is on.
SANDBOX_KEY_PREFIXES = {"test_api_key": "sandbox-test-", "production_api_key": "sandbox-live-"}
# Every Intercom topic the portal acts on: the ones to subscribe to.
WEBHOOK_TOPICS: tuple[str, ...] = tuple(HANDLERS)
UNMAPPED_TEAMMATES_SHOWN = 50


def sandbox_key_hint(field: str) -> str:
    """How a key the sandbox's Stella takes looks, for the field it goes in."""
    prefix = SANDBOX_KEY_PREFIXES[field]
    return f"Sandbox: its Stella takes any key starting {prefix} (e.g. {prefix}key-1) and refuses others."


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
    # Inbox app and service recovery: an optional step, not counted in `steps`; the app's two URLs.
    inbox_app: Step = Step(TODO, "")
    inbox_app_urls: tuple[str, ...] = ()

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
    inbox_app_urls: tuple[str, ...] = (),
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
        refuse_unless_testable(account, integration=integration)
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
        test_employee_email=last_test_employee(last_test_call, test_employees)
        or account_test_employee_email(account)
        or (test_employees[0][0] if test_employees else fallback_employee_email),
        test_employees=test_employees,
        sandbox_secret=sandbox_secret if sandbox else "",
        unmapped_teammates=unmapped,
        week=week,
        problems=problems,
        inbox_app=_inbox_app_step(account),
        inbox_app_urls=inbox_app_urls,
    )


# The attention model's problems that are this step's (surveys/reporting/attention.py decides them).
INTERCOM_PROBLEMS = ("intercom_token_missing", "intercom_token_rejected", "intercom_other_workspace")


def _intercom_step(account: Account, problems: list[Problem]) -> Step:
    health = health_of(account)
    token = account.integration.intercom_access_token
    if not account.intercom_workspace_id and not token:
        return Step(TODO, "No Intercom workspace yet: connect with Intercom.")
    if problem := next((problem for problem in problems if problem.code in INTERCOM_PROBLEMS), None):
        state = WARNING if problem.code == "intercom_other_workspace" else TODO
        return Step(state, f"{problem.text} {problem.fix}")
    token_workspace = health.intercom_token_workspace_id
    if not health.intercom_token_checked_at or not token_workspace:
        return Step(TODO, f"Access token stored ({mask_secret(token)}), not checked yet: Check now.")
    workspace = workspace_words(token_workspace, health.intercom_token_workspace_name)
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
    if teammate_problems := [problem for problem in attention if _is_teammate_problem(problem)]:
        return Step(TODO, " ".join(f"{problem.text} {problem.fix}" for problem in teammate_problems))
    if unmapped_problems := _unmapped_problems(unmapped):
        return Step(TODO, "; ".join(unmapped_problems) + ": give them their Stella custom id, or add them in Stella.")
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


def _is_teammate_problem(problem: Problem) -> bool:
    """Unknown teammates, or a kind of invalid request that is a teammate's problem (the registry says)."""
    if problem.code == "unknown_teammates":
        return True
    return problem.code.startswith("invalid:") and getattr(messages.message(problem.code[8:]), "per_teammate", False)


def _unmapped_problems(unmapped: list[Teammate]) -> list[str]:
    """Among the teammates Stella knows by email only: those Stella refused, and bots with no Stella employee."""
    refused = sum(bool(getattr(teammate, "refused_by_stella", False)) for teammate in unmapped)
    bots = sum(teammate.is_bot for teammate in unmapped)
    problems = []
    if refused:
        problems.append(f"Stella answered {messages.STELLA_EMPLOYEE_NOT_FOUND.words} for {plural(refused, 'teammate')}")
    if bots:
        problems.append(
            f"{plural(bots, 'bot')} without a Stella employee (Stella needs one even to record do-not-send)"
        )
    return problems


def _go_live_step(integration: IntegrationSettings, week: dict[str, int]) -> Step:
    if integration.mode == Mode.LIVE:
        return Step(DONE, "Live: surveys go to customers with the production key.")
    if not integration.production_api_key:
        return Step(TODO, "In test mode. Enter the production key before going live.")
    if not week["succeeded"]:
        return Step(TODO, "In test mode, and no test request succeeded in the last 7 days: test before going live.")
    return Step(TODO, f"Ready to go live: {plural(week['succeeded'], 'test request')} succeeded in the last 7 days.")


def _inbox_app_step(account: Account) -> Step:
    seen = health_of(account).inbox_app_seen_at
    if seen:
        return Step(DONE, f"Intercom showed the inbox app in a conversation on {timezone.localtime(seen):%Y-%m-%d}.")
    return Step(
        TODO,
        "Let teammates see each conversation's survey in Intercom, and stop one that waits. In Intercom's "
        "Developer Hub, your app → Canvas Kit: add it to the Inbox (conversation details) with the URLs below; a "
        "teammate then adds the app to their conversation details.",
    )


def workspace_words(workspace_id: str, name: str) -> str:
    return f"workspace {workspace_id} ({name})" if name else f"workspace {workspace_id}"
