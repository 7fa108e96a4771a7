"""One vocabulary everywhere: one set of requests, in every state and with the common reasons, rendered on every
screen that shows them (the status page's tabs, its CSV, the JSON API, the admin's request lists and pages, the dry
run), each state and reason in the same words, taken from the message registry (integrations/messages.py) and the
outcome labels. Support users read who to ask, CSMs the fix."""

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from integrations import messages
from surveys.admin.tabs import RESEND_LABEL
from surveys.decisions.rules import Decision
from surveys.models import ApiRequest, SurveyOutcome, SurveyRequest
from surveys.reporting.status import TABS
from tests.factories import SurveyRequestFactory

pytestmark = pytest.mark.django_db
S, O, D = SurveyRequest.Status, ApiRequest.Outcome, Decision  # noqa: E741
STELLA = "https://stella.example/v1/requests"
RESOLVED = f"{O.INVALID.label}, resolved by a resend"


@dataclass
class Case:
    """A survey request, its calls to Stella, and what every screen must call them."""

    status: str
    decision: str
    reason: str = ""  # the rule's code
    detail: str = ""  # what happened since: Stella's answer, stored as the request's status detail
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (outcome, error message, url)
    outcome: str = ""  # the request's outcome, in words
    words: str = ""  # its reason, in words
    call_outcomes: list[str] = field(default_factory=list)  # each call's outcome, in words


def _entry(code: str) -> messages.Message:
    found = messages.message(code)
    assert found is not None
    return found


W = {code: entry.words for code, entry in messages.MESSAGES.items()}
CASES = {
    "sent": Case(S.SENT, D.SEND, calls=[(O.SENT, "", STELLA)], outcome=SurveyOutcome.SENT.label,
                 call_outcomes=[O.SENT.label]),
    "bot": Case(S.SENT, D.DO_NOT_SEND, "bot_assignee", calls=[(O.SENT, "", STELLA)],
                outcome=SurveyOutcome.DO_NOT_SEND.label, words=W["bot_assignee"],
                call_outcomes=[SurveyOutcome.DO_NOT_SEND.label]),
    "tagged": Case(S.SENT, D.DO_NOT_SEND, "suppressed_tag", calls=[(O.SENT, "", STELLA)],
                   outcome=SurveyOutcome.DO_NOT_SEND.label, words=W["suppressed_tag"],
                   call_outcomes=[SurveyOutcome.DO_NOT_SEND.label]),
    "window": Case(S.SUPPRESSED, D.SUPPRESSED, "suppression_window", outcome=SurveyOutcome.SUPPRESSED.label,
                   words=W["suppression_window"]),
    "surveyed": Case(S.SUPPRESSED, D.SUPPRESSED, "already_surveyed", outcome=SurveyOutcome.SUPPRESSED.label,
                     words=W["already_surveyed"]),
    "reopened": Case(S.CANCELLED, D.SEND, "reopened", outcome=SurveyOutcome.CANCELLED.label, words=W["reopened"]),
    "replied": Case(S.CANCELLED, D.SEND, "customer_replied", outcome=SurveyOutcome.CANCELLED.label,
                    words=W["customer_replied"]),
    "channel_off": Case(S.INVALID, D.INVALID, "channel_disabled", calls=[(O.INVALID, W["channel_disabled"], "")],
                        outcome=S.INVALID.label, words=W["channel_disabled"], call_outcomes=[O.INVALID.label]),
    "unknown": Case(S.INVALID, D.INVALID, "employee_unknown", calls=[(O.INVALID, W["employee_unknown"], "")],
                    outcome=S.INVALID.label, words=W["employee_unknown"], call_outcomes=[O.INVALID.label]),
    "not_found": Case(S.INVALID, D.SEND, detail=W["stella_employee_not_found"],
                      calls=[(O.INVALID, W["stella_employee_not_found"], STELLA)], outcome=S.INVALID.label,
                      words=W["stella_employee_not_found"], call_outcomes=[O.INVALID.label]),
    "no_brand": Case(S.INVALID, D.SEND, detail=W["stella_brand_missing"],
                     calls=[(O.INVALID, W["stella_brand_missing"], STELLA)], outcome=S.INVALID.label,
                     words=W["stella_brand_missing"], call_outcomes=[O.INVALID.label]),
    "resent": Case(S.SENT, D.SEND, calls=[(O.INVALID, W["stella_employee_not_found"], STELLA), (O.SENT, "", STELLA)],
                   outcome=SurveyOutcome.SENT.label, call_outcomes=[RESOLVED, O.SENT.label]),
    "gave_up": Case(S.FAILED, D.SEND, detail="Gave up after 3 attempts: Stella answered 503",
                    calls=[(O.FAILED, "Stella answered 503", STELLA)], outcome=S.FAILED.label,
                    words="Gave up after 3 attempts: Stella answered 503", call_outcomes=[O.FAILED.label]),
    "ambiguous": Case(S.AMBIGUOUS, D.SEND, calls=[(O.AMBIGUOUS, "", STELLA)], outcome=S.AMBIGUOUS.label,
                      call_outcomes=[O.AMBIGUOUS.label]),
    "waiting": Case(S.SCHEDULED, D.SEND, outcome=S.SCHEDULED.label),
}  # fmt: skip
# Names the screens once used for the same states and causes: none may come back.
OLD_NAMES = ["Send", "Suppress", "Send, flagged do not send", "Channel turned off for the account", "Unknown teammate"]


@pytest.fixture
def requests(account):
    """Each case's survey request and calls; conversation ids are the cases' names."""
    now = timezone.now().replace(microsecond=0)
    rows = {}
    for n, (name, case) in enumerate(CASES.items()):
        survey_request = SurveyRequestFactory(
            account=account,
            conversation_id=name,
            closed_at=now - timedelta(minutes=10 + n),
            status=case.status,
            decision=case.decision,
            reason=case.reason,
            status_detail=case.detail,
            detail_code=messages.code_of(case.detail),
            sent_at=now if case.status == S.SENT else None,
        )
        for outcome, message, url in case.calls:
            ApiRequest.objects.create(
                survey_request=survey_request,
                account=account,
                mode=survey_request.mode,
                url=url,
                outcome=outcome,
                error_message=message,
            )
        rows[name] = survey_request
    return rows


@pytest.fixture
def support(account):
    user = User.objects.create_user("support-lead", password="x")
    account.support_users.add(user)
    client = Client()
    client.force_login(user)
    return client


class Tables(HTMLParser):
    """A page's tables: each one's attributes, header cells and body rows, every cell as its text and the text of
    its first <strong> (the status page's reason)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.cell: list[str] | None = None
        self.strong: list[str] | None = None
        self.strongs: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"attrs": dict(attrs), "head": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self.cell, self.strongs = [], []
        elif tag == "strong" and self.cell is not None:
            self.strong = []

    def handle_endtag(self, tag):
        if tag == "strong" and self.strong is not None:
            self.strongs.append(" ".join("".join(self.strong).split()))
            self.strong = None
        elif tag in ("td", "th") and self.cell is not None:
            text = " ".join("".join(self.cell).split())
            self.tables[-1]["rows"][-1].append((text, self.strongs[0] if self.strongs else ""))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        if self.strong is not None:
            self.strong.append(data)

    def table(self, **attrs: str) -> list[dict[str, tuple[str, str]]]:
        """The body rows of the table with these attributes, each as {header: (text, strong)}."""
        found = [t for t in self.tables if all(attrs[k] in t["attrs"].get(k, "").split() for k in attrs)]
        assert len(found) == 1, f"{len(found)} tables with {attrs}"
        head, *body = [row for row in found[0]["rows"] if row]
        names = [text for text, _ in head]
        return [dict(zip(names, row, strict=False)) for row in body if len(row) == len(names)]


def conversation_of(cell: str) -> str:
    """The case named in a cell (the conversation id, maybe with a ↗ after it)."""
    return cell.split()[0]


def calls_by_outcome() -> dict[str, list[str]]:
    """{case: its calls' outcomes in words}, newest call first, as the lists show them."""
    return {name: list(reversed(case.call_outcomes)) for name, case in CASES.items() if case.call_outcomes}


def reason_of_call(name: str, outcome: str) -> str:
    """A call's reason: its error message in the registry's words, or none."""
    return messages.words_of(code_of_call(name, outcome), _call(name, outcome)[1])


def code_of_call(name: str, outcome: str) -> str:
    """A call's reason code: the rule's for one rejected here, else that of Stella's message."""
    _, message, url = _call(name, outcome)
    return "" if not message else CASES[name].reason if not url else messages.code_of(message)


def _call(name: str, outcome: str) -> tuple[str, str, str]:
    case = CASES[name]
    return next(call for call, words in zip(case.calls, case.call_outcomes, strict=True) if words == outcome)


def test_every_screen_gives_each_state_and_reason_the_same_words(requests, account, support, admin_client):
    seen = _status_page(support, admin_client)
    _csv(support)
    _api(support)
    _admin_lists(admin_client)
    _admin_pages(admin_client, requests)
    _dry_run(admin_client, account)
    # Every case showed up on the status page: under its own outcome's tab, an invalid one under Invalid Requests.
    assert seen == set(CASES)


def _expected_tab(case: Case) -> str:
    status = SurveyRequest(status=case.status, decision=case.decision)
    return str(status.outcome.value)


def _status_page(support: Client, admin_client: Client) -> set[str]:
    seen = set()
    for client, csm in ((support, False), (admin_client, True)):
        for tab in TABS:
            page = client.get("/status/", {"tab": tab.key})
            assert page.status_code == 200
            rows = Tables(page.content.decode()).table(**{"class": "rows"})
            rows = [row for row in rows if row["Conversation"][0] in CASES]
            for row in rows:
                name = row["Conversation"][0]
                outcome, (reason_cell, reason) = row["Outcome"][0], row["Reason"]
                if tab.key in ("requests", "test", "invalid"):
                    assert outcome in CASES[name].call_outcomes, (tab.key, name)
                    assert reason == reason_of_call(name, outcome), (tab.key, name)
                    code = code_of_call(name, outcome)
                    seen.add(name) if tab.key == "invalid" else None
                else:
                    assert tab.key == _expected_tab(CASES[name]), name
                    assert (outcome, reason or _verbatim(reason_cell, name)) == (
                        CASES[name].outcome,
                        CASES[name].words,
                    ), (tab.key, name)
                    seen.add(name)
                    code = CASES[name].reason or messages.code_of(CASES[name].detail)
                _who_acts(reason_cell, code, csm=csm, resolved=outcome == RESOLVED)
                assert outcome not in OLD_NAMES and reason not in OLD_NAMES
            if tab.key == "requests":  # every call, each once
                assert sorted((row["Conversation"][0], row["Outcome"][0]) for row in rows) == sorted(
                    (name, outcome) for name, outcomes in calls_by_outcome().items() for outcome in outcomes
                )
    return seen


def _verbatim(cell: str, name: str) -> str:
    """A reason nobody knows (no <strong>-ed registry name: the stored detail, verbatim) is the cell's start."""
    return CASES[name].words if CASES[name].words and cell.startswith(CASES[name].words) else ""


def _who_acts(cell: str, code: str, *, csm: bool, resolved: bool) -> None:
    """A support user reads who to ask, a CSM the fix: for every reason something of ours (or Stella's) fixes."""
    entry = messages.message(code)
    if entry is None or entry.place == messages.FixPlace.NOWHERE or resolved:
        assert "Ask your CSM" not in cell
        return
    if csm:
        assert entry.fix in cell and "Ask your CSM" not in cell, cell
    else:
        assert messages.WHO_TO_ASK[entry.place] in cell and entry.fix not in cell, cell


TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def _csv(support: Client) -> None:
    for tab in TABS:
        response = support.get("/status/export.csv", {"tab": tab.key})
        text = b"".join(response.streaming_content).decode("utf-8-sig")
        for row in csv.DictReader(io.StringIO(text)):
            name = row["conversation"]
            assert TIME.match(row["time"]), (tab.key, row["time"])  # one format on every tab: no microseconds
            if tab.key in ("requests", "test", "invalid"):
                assert row["outcome"] in CASES[name].call_outcomes
                assert row["reason"] == reason_of_call(name, row["outcome"])
            else:
                assert (row["outcome"], row["reason"]) == (CASES[name].outcome, CASES[name].words), name


def _api(support: Client) -> None:
    rows = support.get("/api/survey-requests/", {"page_size": 100}).json()["results"]
    assert {row["conversation_id"]: (row["outcome_label"], row["reason_label"]) for row in rows} == {
        name: (case.outcome, case.words) for name, case in CASES.items()
    }
    calls = support.get("/api/api-requests/", {"page_size": 100}).json()["results"]
    assert sorted((row["conversation_id"], row["outcome_label"], row["reason_label"]) for row in calls) == sorted(
        (name, outcome, reason_of_call(name, outcome)) for name, outcomes in calls_by_outcome().items()
        for outcome in outcomes
    )  # fmt: skip


def _admin_lists(admin_client: Client) -> None:
    for outcome in SurveyOutcome:
        page = admin_client.get(reverse("admin:surveys_surveyrequest_changelist"), {"outcome": outcome.value})
        if page.status_code == 302:  # no tab for this outcome (invalid ones are under Invalid Requests)
            continue
        for row in Tables(page.content.decode()).table(id="result_list"):
            name = conversation_of(row["Conversation"][0])
            assert (row["Outcome"][0], row["Reason"][0]) == (CASES[name].outcome, _cut(CASES[name].words)), name
    for changelist in ("surveyrequest", "apirequest", "testapirequest", "invalidapirequest"):
        page = admin_client.get(reverse(f"admin:surveys_{changelist}_changelist"))
        # One name for the one resend action, on every list.
        actions = re.findall(r'<option value="(\w+)"[^>]*>([^<]*)</option>', page.content.decode())
        assert ("resend", escape(RESEND_LABEL)) in actions, changelist
        if changelist == "surveyrequest":
            continue
        for row in Tables(page.content.decode()).table(id="result_list"):
            name = conversation_of(row["Conversation"][0])
            outcome = row["Outcome"][0] if "Outcome" in row else None
            if outcome is not None:
                assert outcome in CASES[name].call_outcomes, (changelist, name, outcome)
            error = row["Error"][0]
            if error != "-":  # the admin's empty value
                reasons = {reason_of_call(name, each) for each in CASES[name].call_outcomes} - {""}
                resolved = " ✓ resolved by a resend" if RESOLVED in CASES[name].call_outcomes else ""
                assert error in {f"{_cut(reason)}{resolved}" for reason in reasons}, (changelist, name, error)


def _cut(words: str) -> str:
    """A list's cell: the words as they are, up to the list's limit."""
    from portal.admin_helpers import LIST_TEXT_SHOWN
    from portal.text import cut

    return cut(words, LIST_TEXT_SHOWN)


def _readonly(html: str, field_name: str) -> str:
    found = re.search(rf'field-{field_name}\b.*?<div class="readonly">(.*?)</div>', html, flags=re.S)
    assert found, field_name
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def _admin_pages(admin_client: Client, requests: dict[str, SurveyRequest]) -> None:
    for name, survey_request in requests.items():
        html = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk])).content
        page = html.decode()
        case = CASES[name]
        assert (_readonly(page, "outcome"), _readonly(page, "why")) == (case.outcome, _cut(case.words)), name
        for call in survey_request.api_requests.all():
            page = admin_client.get(reverse("admin:surveys_apirequest_change", args=[call.pk])).content.decode()
            assert _readonly(page, "call_outcome") in case.call_outcomes, name


def _dry_run(admin_client: Client, account) -> None:
    page = admin_client.get(
        reverse("admin:surveys_account_dry_run", args=[account.pk]),
        {"email_enabled": "on", "chat_enabled": "on", "channel_delay": "1m", "suppression_window": "7d", "days": "30"},
    )
    rows = Tables(page.content.decode()).table(**{"class": "dry-run-counts"})
    current = {(row["Outcome"][0], row["Reason"][0]) for row in rows if row["Current"][0] != "0"}
    # What did happen, as the rules decided it: a closure they let through counts as sent, whatever Stella said.
    decided = {
        (case.outcome if case.decision != D.SEND or case.status == S.CANCELLED else SurveyOutcome.SENT.label,
         case.words if case.reason else "—")
        for case in CASES.values()
    }  # fmt: skip
    assert current == decided
    for row in rows:  # the replay's own outcomes too
        assert row["Outcome"][0] in SurveyOutcome.labels and row["Outcome"][0] not in OLD_NAMES
        assert row["Reason"][0] == "—" or row["Reason"][0] in W.values()
