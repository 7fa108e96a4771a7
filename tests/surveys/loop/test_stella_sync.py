"""Closing the loop with Stella (surveys/loop/): its employees against our teammates, its feedback
records against our survey requests, and what the two say of requests we aren't sure of.

Stella is played at the HTTP layer (`responses`, behind the real StellaDataClient) where a test needs
exact records (an edit, a 429, 1,000 records); the last tests run against the sandbox's Stella on a
live server, records made by the real send path."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import responses
from django.contrib.auth.models import User
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.errors import TRACEBACK_LENGTH
from sandbox.demo import sandbox_people_create
from sandbox.models import StellaSandboxFeedback
from surveys.admin.accounts import IntegrationSettingsForm
from surveys.delivery.sending import survey_request_send
from surveys.loop.employees import (
    EmployeeSync,
    stella_employees_sync,
    teammates_recheck_before_resend,
    teammates_unknown_to_stella,
)
from surveys.loop.feedback import FeedbackPull, stella_feedback_pull
from surveys.loop.reconcile import survey_requests_reconcile
from surveys.loop.stella import stella_data_client
from surveys.loop.sync import stella_sync_all
from surveys.models import (
    ApiRequest,
    DailyCount,
    Feedback,
    IntegrationSettings,
    QuarantinedFeedback,
    StellaEmployee,
    StellaSyncState,
    SurveyRequest,
    Teammate,
    TeammateDailyCount,
)
from surveys.reporting.counts import count_survey_request_recorded
from tests.factories import NOW, AccountFactory, FeedbackFactory, SurveyRequestFactory, TeammateFactory

# Stella's API secrets are not ours to lengthen: PyJWT's warning about short ones is noise (see data.py).
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

STELLA = "https://acme.api.stellaconnect.example"
SECRET = "stella-api-secret-0000-s3cr"
TEST_KEY = "test-key-0000-1111-2222-abcd"  # AccountFactory's
S = SurveyRequest.Status
Flag = SurveyRequest.ReconcileFlag
Match = Teammate.StellaMatch
CREATED = NOW - timedelta(hours=30)  # when Stella recorded the requests of most tests: a day before NOW


class FakeStella:
    """Stella's Data Return and User Management APIs for one key and secret, at the HTTP layer: records
    kept by uuid, each edit given the next sequence id as Stella does."""

    def __init__(self, mock: responses.RequestsMock, *, url: str = STELLA, api_key: str = TEST_KEY) -> None:
        self.api_key = api_key
        self.records: dict[str, dict[str, Any]] = {}
        self.employees: list[dict[str, Any]] = []
        self.sequence = 0
        self.page_size = 1000
        self.rate_limited = 0  # how many of the next /v2/data calls answer 429
        self.data_calls: list[int | None] = []  # each /v2/data call's `after`
        self.employee_calls = 0
        mock.add_callback(responses.GET, f"{url}/v2/data", callback=self._data)
        mock.add_callback(responses.GET, f"{url}/v2/employees", callback=self._employees)

    def record(
        self,
        conversation_id: str = "",
        *,
        uuid: str | None = None,
        email: str = "tess@support.example",
        custom_id: str = "",
        stars: int | None = None,
        created=CREATED,
        **fields: Any,
    ) -> str:
        """Add a record, or edit the one with `uuid`: either way it gets the next sequence id."""
        self.sequence += 1
        uuid = uuid or f"rec-{self.sequence:06d}"
        record = self.records.get(uuid) or {
            "uuid": uuid,
            "ext_interaction_id": conversation_id,
            "channel": "chat",
            "is_recovery": False,
            "request_created_at": created.isoformat(),
            "request_sent_at": created.isoformat(),
            "request_delivery_status": "Delivered",
            "response_received_at": None,
            "employee": {"custom_id": custom_id, "email": email, "first_name": "Tess", "last_name": "Teammate"},
            "answers": {},
        }
        record = {**record, **fields, "sequence_id": self.sequence}
        if stars is not None:
            record["response_received_at"] = (created + timedelta(hours=1)).isoformat()
            record["answers"] = {
                "agent_star_rating": {
                    "question_id": "q-stars",
                    "question_text": "How would you rate Tess?",
                    "comment": f"{stars} stars",
                    "selected_options": {f"o{stars}": {"option_id": f"o{stars}", "integer_value": stars}},
                }
            }
        self.records[uuid] = record
        return uuid

    def employee(self, email: str = "", custom_id: str = "", *, active: bool = True) -> None:
        self.employees.append(
            {
                "id": len(self.employees) + 1,
                "email": email,
                "custom_employee_id": custom_id,
                "first_name": (email or custom_id).split("@")[0].title(),
                "last_name": "",
                "status": "active" if active else "deactivated",
            }
        )

    def _refused(self, request) -> tuple[int, dict[str, str], str] | None:
        try:
            jwt.decode(request.headers.get("Authorization", ""), SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return 401, {}, json.dumps({"message": "Unauthorized"})
        if request.headers.get("x-api-key") != self.api_key:
            return 401, {}, json.dumps({"message": "Unauthorized"})
        return None

    def _data(self, request) -> tuple[int, dict[str, str], str]:
        if refused := self._refused(request):
            return refused
        query = parse_qs(urlsplit(request.url).query)
        after = int(query["after"][0]) if "after" in query else None
        self.data_calls.append(after)
        if self.rate_limited:
            self.rate_limited -= 1
            return 429, {"Retry-After": "120"}, json.dumps({"message": "Too Many Requests"})
        limit = min(int(query.get("limit", ["1000"])[0]), self.page_size)
        newer = sorted(
            (record for record in self.records.values() if after is None or record["sequence_id"] > after),
            key=lambda record: record["sequence_id"],
        )
        return 200, {}, json.dumps(newer[:limit])

    def _employees(self, request) -> tuple[int, dict[str, str], str]:
        if refused := self._refused(request):
            return refused
        self.employee_calls += 1
        return 200, {}, json.dumps({"employees": self.employees, "meta": {}})


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def stella(mock) -> FakeStella:
    return FakeStella(mock)


@pytest.fixture
def account(db):
    return AccountFactory(integration__stella_api_secret=SECRET, integration__stella_api_url=STELLA)


def sent_request(account, conversation_id: str, **fields: Any) -> SurveyRequest:
    fields = {"status": S.SENT, "closed_at": CREATED - timedelta(minutes=1), **fields}
    fields.setdefault("sent_at", fields["closed_at"])
    return SurveyRequestFactory(account=account, conversation_id=conversation_id, **fields)


def counts(account) -> dict[tuple[str, str, str], tuple[int, int, int, int, int]]:
    """{(mode, teammate, channel): (requested, delivered, responded, rating sum, rating count)}, zeros left out."""
    rows = TeammateDailyCount.objects.filter(account=account)
    return {
        (row.mode, row.teammate, row.channel): values
        for row in rows
        if any(values := (row.requested, row.delivered, row.responded, row.rating_sum, row.rating_count))
    }


# ---- Employees -------------------------------------------------------------------------------------------------


def test_employee_sync_matches_teammates_by_email_or_their_custom_id(account, stella):
    stella.employee("ada@support.example")
    stella.employee("bo.private@home.example", custom_id="EMP-7")
    stella.employee("dee@support.example", active=False)
    ada = TeammateFactory(account=account, name="Ada", email="Ada@Support.example")
    bo = TeammateFactory(account=account, name="Bo", email="bo@support.example", stella_custom_id="EMP-7")
    cy = TeammateFactory(account=account, name="Cy", email="cy@support.example")
    dee = TeammateFactory(account=account, name="Dee", email="dee@support.example")
    # A custom id is what Stella is told instead of the email: a wrong one fails even though the email is known.
    eve = TeammateFactory(account=account, name="Eve", email="ada@support.example", stella_custom_id="EMP-404")
    fin = TeammateFactory(account=account, name="Fin", email="operator@intercom.io", is_bot=True)
    other = TeammateFactory(name="Cy elsewhere", email="cy@support.example")

    result = stella_employees_sync(account, now=NOW)

    assert (result.employees, result.matched, result.unmatched, result.error) == (3, 2, 3, "")
    matches = dict(Teammate.objects.values_list("name", "stella_match"))
    assert matches == {
        "Ada": Match.EMAIL,
        "Bo": Match.CUSTOM_ID,
        "Cy": Match.UNMATCHED,
        "Dee": Match.UNMATCHED,  # deactivated: Stella refuses her requests
        "Eve": Match.UNMATCHED,
        "Fin": Match.NOT_CHECKED,  # bots aren't checked
        "Cy elsewhere": Match.NOT_CHECKED,  # another account's
    }
    assert list(teammates_unknown_to_stella(account)) == [cy, dee, eve]
    assert Teammate.objects.get(pk=ada.pk).stella_checked_at == NOW
    assert {ada.pk, bo.pk, fin.pk, other.pk}.isdisjoint(t.pk for t in teammates_unknown_to_stella(account))
    assert set(StellaEmployee.objects.filter(account=account).values_list("email", "active")) == {
        ("ada@support.example", True),
        ("bo.private@home.example", True),
        ("dee@support.example", False),
    }
    state = StellaSyncState.objects.get(account=account)
    assert (state.employees_synced_at, state.employees_error) == (NOW, "")


def test_a_resend_of_employee_not_found_reads_stellas_employees_again_first(account, stella):
    stella.employee("ada@support.example")
    ada = TeammateFactory(account=account, name="Ada", email="ada@support.example", intercom_id="41001")
    bo = TeammateFactory(account=account, name="Bo", email="bo@support.example", intercom_id="41002")
    stella_employees_sync(account, now=NOW)
    refused = {
        teammate.name: SurveyRequestFactory(
            account=account,
            status=S.INVALID,
            teammate_id=teammate.intercom_id,
            teammate_email=teammate.email,
            reason="employee_unknown" if teammate is bo else "",
            status_detail="Employee not found",
        )  # fmt: skip
        for teammate in (ada, bo)
    }
    stella.employee("bo@support.example")  # added in Stella since the last sync
    other = SurveyRequestFactory(account=account, status=S.FAILED)
    calls = stella.employee_calls

    recheck = teammates_recheck_before_resend([*refused.values(), other], now=NOW)

    assert stella.employee_calls == calls + 1  # one employee list for the account, whatever the requests
    assert (recheck.still_unknown, recheck.unchecked) == ([], [])
    assert Teammate.objects.get(pk=bo.pk).stella_match == Match.EMAIL
    stella.employees.clear()
    assert teammates_recheck_before_resend(refused.values(), now=NOW).still_unknown == list(refused.values())


def test_employees_no_longer_listed_are_removed_and_their_teammates_unmatched(account, stella):
    stella.employee("ada@support.example")
    stella.employee("bo@support.example")
    bo = TeammateFactory(account=account, email="bo@support.example")
    stella_employees_sync(account, now=NOW)
    assert Teammate.objects.get(pk=bo.pk).stella_match == Match.EMAIL

    stella.employees.pop()
    result = stella_employees_sync(account, now=NOW + timedelta(hours=1))

    assert (result.employees, result.removed) == (1, 1)
    assert list(StellaEmployee.objects.filter(account=account).values_list("email", flat=True)) == [
        "ada@support.example"
    ]
    assert list(teammates_unknown_to_stella(account)) == [bo]


def test_a_failed_employee_sync_keeps_its_error_until_one_succeeds(account, stella):
    IntegrationSettings.objects.filter(account=account).update(test_api_key="test-key-wrong-0000-9999")
    account.refresh_from_db()
    result = stella_employees_sync(account, now=NOW)
    assert "rejected the API key or API secret (401)" in result.error
    state = StellaSyncState.objects.get(account=account)
    assert state.employees_error == result.error and state.employees_synced_at is None
    assert state.employees_attempted_at == NOW
    assert "wrong" not in result.error and SECRET not in result.error

    IntegrationSettings.objects.filter(account=account).update(test_api_key=TEST_KEY)
    account.refresh_from_db()
    assert stella_employees_sync(account, now=NOW + timedelta(hours=1)).error == ""
    state.refresh_from_db()
    assert (state.employees_error, state.employees_synced_at) == ("", NOW + timedelta(hours=1))


def test_nothing_is_read_without_a_secret_or_with_the_features_off(account, stella):
    integration = account.integration
    integration.employee_sync_enabled = integration.feedback_return_enabled = False
    integration.save()
    assert stella_employees_sync(account, now=NOW).skipped
    assert stella_feedback_pull(account, now=NOW).skipped
    IntegrationSettings.objects.filter(account=account).update(
        stella_api_secret="", employee_sync_enabled=True, feedback_return_enabled=True
    )
    account.refresh_from_db()
    assert "No Stella API secret" in stella_employees_sync(account, now=NOW).skipped
    assert "No Stella API secret" in stella_feedback_pull(account, now=NOW).skipped
    assert stella_sync_all(now=NOW) == 0
    assert (stella.employee_calls, stella.data_calls) == (0, [])


# ---- Feedback --------------------------------------------------------------------------------------------------


def test_a_pull_pages_on_from_the_saved_cursor_until_an_empty_page(account, stella):
    for conversation_id in ("1", "2", "3", "4", "5"):
        stella.record(conversation_id)
    StellaSyncState.objects.create(account=account, feedback_cursor=2, feedback_records=2)
    stella.page_size = 2

    pull = stella_feedback_pull(account, now=NOW)

    assert stella.data_calls == [2, 4, 5]  # the last page, after 5, is empty: that ends it
    assert (pull.pages, pull.records, pull.created, pull.caught_up, pull.error) == (2, 3, 3, True, "")
    assert sorted(Feedback.objects.values_list("ext_interaction_id", flat=True)) == ["3", "4", "5"]
    state = StellaSyncState.objects.get(account=account)
    assert (state.feedback_cursor, state.feedback_records, state.feedback_synced_at) == (5, 5, NOW)


def test_a_pull_stops_after_its_page_budget_and_the_next_one_carries_on(account, stella, settings):
    settings.STELLA_FEEDBACK_MAX_PAGES = 2
    for conversation_id in "12345":
        stella.record(conversation_id)
    stella.page_size = 2

    first = stella_feedback_pull(account, now=NOW)
    assert (first.pages, first.caught_up, Feedback.objects.count()) == (2, False, 4)
    second = stella_feedback_pull(account, now=NOW + timedelta(minutes=15))
    assert (second.pages, second.caught_up, Feedback.objects.count()) == (1, True, 5)
    assert stella.data_calls == [None, 2, 4, 5]


def test_an_edited_record_updates_its_row_and_moves_the_teammate_counts(account, stella):
    request = sent_request(account, "100")
    uuid = stella.record("100")
    stella_feedback_pull(account, now=NOW)
    assert counts(account) == {("test", "tess@support.example", "chat"): (1, 1, 0, 0, 0)}

    stella.record(uuid=uuid, stars=5)  # the customer answers: the record comes back with a new sequence id
    stella.record("101", stars=4)
    pull = stella_feedback_pull(account, now=NOW + timedelta(minutes=15))

    assert (pull.records, pull.created) == (2, 1)
    row = Feedback.objects.get(uuid=uuid)
    assert (row.sequence_id, row.star_rating, row.comment, row.survey_request) == (2, 5, "5 stars", request)
    assert Feedback.objects.count() == 2
    assert counts(account) == {("test", "tess@support.example", "chat"): (2, 2, 2, 9, 2)}

    stella.record(uuid=uuid, stars=2)  # rated again, lower
    stella_feedback_pull(account, now=NOW + timedelta(minutes=30))
    assert counts(account) == {("test", "tess@support.example", "chat"): (2, 2, 2, 6, 2)}

    stella.record(uuid=uuid, employee={"custom_id": "EMP-9", "email": "", "first_name": "Ida", "last_name": ""})
    stella_feedback_pull(account, now=NOW + timedelta(minutes=45))  # credited to someone else: the count moves
    assert counts(account) == {
        ("test", "tess@support.example", "chat"): (1, 1, 1, 4, 1),
        ("test", "EMP-9", "chat"): (1, 1, 1, 2, 1),
    }
    assert TeammateDailyCount.objects.get(teammate="EMP-9").teammate_name == "Ida"
    assert set(TeammateDailyCount.objects.values_list("day", flat=True)) == {CREATED.date()}
    assert StellaSyncState.objects.get(account=account).feedback_records == 2


def test_a_429_stops_the_pull_and_the_next_run_waits_as_stella_asked(account, stella):
    for conversation_id in "123":
        stella.record(conversation_id)
    stella.page_size = 2

    stella_feedback_pull(account, now=NOW, max_pages=1)
    stella.rate_limited = 1
    limited = stella_feedback_pull(account, now=NOW + timedelta(minutes=15))

    assert limited.retry_at == NOW + timedelta(minutes=15, seconds=120)
    assert "rate limit" in limited.error
    state = StellaSyncState.objects.get(account=account)
    assert (state.feedback_cursor, state.feedback_retry_at) == (2, limited.retry_at)
    assert "rate limit" in state.feedback_error

    waiting = stella_feedback_pull(account, now=NOW + timedelta(minutes=16))
    assert "Waiting until" in waiting.skipped
    assert stella.data_calls == [None, 2]  # the wait asked nothing of Stella

    resumed = stella_feedback_pull(account, now=NOW + timedelta(minutes=18))
    assert (resumed.records, resumed.caught_up, resumed.error) == (1, True, "")
    state.refresh_from_db()
    assert (state.feedback_cursor, state.feedback_retry_at, state.feedback_error) == (3, None, "")


def test_records_link_to_their_own_accounts_request_of_the_conversation(account, stella):
    mine = sent_request(account, "555")
    theirs = sent_request(AccountFactory(), "555")
    # Closed twice: the request that reached Stella is linked first, however the later close ended.
    reached = sent_request(account, "777", closed_at=CREATED - timedelta(hours=2))
    cancelled = sent_request(account, "777", status=S.CANCELLED, sent_at=None)
    stella.record("555")
    first_of_777 = stella.record("777")
    second_of_777 = stella.record("777")
    unknown = stella.record("not-ours")
    recovery = stella.record("555", is_recovery=True)

    pull = stella_feedback_pull(account, now=NOW)

    assert (pull.records, pull.linked) == (5, 3)
    assert Feedback.objects.get(ext_interaction_id="555", is_recovery=False).survey_request == mine
    assert not Feedback.objects.filter(survey_request=theirs).exists()
    assert Feedback.objects.get(uuid=first_of_777).survey_request == reached
    assert Feedback.objects.get(uuid=second_of_777).survey_request == cancelled
    assert Feedback.objects.get(uuid=unknown).survey_request is None  # kept, unlinked
    assert Feedback.objects.get(uuid=recovery).survey_request is None
    assert Feedback.objects.filter(account=account).count() == 5


def test_a_page_of_1000_records_costs_no_more_queries_than_a_page_of_10(account, stella, django_assert_max_num_queries):
    """The queries of a page don't grow with its records: one read of the rows it updates, one of the requests
    it links to, the upsert and the counts. SQLite's 999-parameter limit splits the upsert of 1,000 rows
    into 24 statements (PostgreSQL: 1; 23 before the team column), hence the bound."""
    bound = 36
    for size, offset in ((10, 0), (1000, 10)):
        SurveyRequest.objects.bulk_create(
            SurveyRequestFactory.build(account=account, status=S.SENT, conversation_id=f"c{offset + n}")
            for n in range(size)
        )
        uuids = [stella.record(f"c{offset + n}", email=f"t{n % 7}@support.example") for n in range(size)]
        with django_assert_max_num_queries(bound):
            new = stella_feedback_pull(account, now=NOW, max_pages=1)
        for uuid in uuids:  # every record answered: the same page, now all updates
            stella.record(uuid=uuid, stars=4)
        with django_assert_max_num_queries(bound):
            edited = stella_feedback_pull(account, now=NOW, max_pages=1)
        assert (new.records, new.created, new.linked) == (size, size, size)
        assert (edited.records, edited.created, edited.linked) == (size, 0, size)
    assert Feedback.objects.filter(account=account, star_rating=4).count() == 1010
    assert sum(requested for requested, *_ in counts(account).values()) == 1010
    assert sum(rating for *_, rating, _count in counts(account).values()) == 4040


# ---- Records that can't be stored as Stella sent them ---------------------------------------------------------


def commented(text: str, *, stars: int = 4) -> dict[str, Any]:
    """A record's answers: the star question, rated and commented."""
    option = {"option_id": f"o{stars}", "integer_value": stars}
    return {"agent_star_rating": {"question_id": "q-stars", "comment": text, "selected_options": {"o": option}}}


def test_poison_records_are_cleaned_or_quarantined_and_the_pull_reads_on_past_them(account, stella, admin_client):
    """Issue 16, finding 3: a NUL or a lone surrogate in a comment, or a NUL in ext_interaction_id, failed the
    whole page (PostgreSQL refuses NUL, SQLite a lone surrogate); the cursor never moved past it."""
    requests = {conversation_id: sent_request(account, conversation_id) for conversation_id in "1235678"}
    stella.record("1", answers=commented("Fine"))
    stella.record("2", answers=commented("Bad\x00comment"))
    stella.record("3", answers=commented("Odd \ud800 comment"), employee={"email": "t\udfff@support.example"})
    bad_id = stella.record("4\x00", answers=commented("Mine, though"))
    stella.record("5")
    stella.page_size = 5
    for conversation_id in "678":  # the next page
        stella.record(conversation_id, stars=5)

    pull = stella_feedback_pull(account, now=NOW)

    assert (pull.error, pull.caught_up, pull.pages, pull.created, pull.quarantined) == ("", True, 2, 7, 1)
    assert stella.data_calls == [None, 5, 8]
    stored = {row.ext_interaction_id: row for row in Feedback.objects.filter(account=account)}
    assert set(stored) == set(requests)
    assert all(stored[conversation_id].survey_request == request for conversation_id, request in requests.items())
    assert stored["2"].comment == "Bad\ufffdcomment"
    assert stored["3"].comment == "Odd \ufffd comment"
    assert stored["3"].raw["answers"]["agent_star_rating"]["comment"] == "Odd \ufffd comment"
    assert stored["3"].employee_email == "t\ufffd@support.example"
    state = StellaSyncState.objects.get(account=account)
    assert (state.feedback_cursor, state.feedback_records, state.feedback_error) == (8, 7, "")

    quarantined = QuarantinedFeedback.objects.get()
    assert (quarantined.account, quarantined.sequence_id, quarantined.uuid) == (account, 4, bad_id)
    assert quarantined.ext_interaction_id == "4\ufffd"
    assert quarantined.reason == (
        "Its conversation id (ext_interaction_id) holds a NUL or half a surrogate pair: changed, it could link "
        "another conversation."
    )
    assert "\\u0000" in quarantined.raw and "\x00" not in quarantined.raw
    assert json.loads(quarantined.raw) == stella.records[bad_id]  # kept as Stella sent it
    assert quarantined.quarantined_at == NOW

    page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk])).content.decode()
    assert "1 feedback record quarantined" in page
    assert quarantined.reason in page and "sequence id 4, uuid rec-000004" in page
    assert reverse("admin:surveys_quarantinedfeedback_change", args=[quarantined.pk]) in page
    listing = reverse("admin:surveys_quarantinedfeedback_changelist") + f"?account__id__exact={account.pk}"
    assert f'href="{listing.replace("&", "&amp;")}"' in page or f'href="{listing}"' in page
    assert admin_client.get(listing).status_code == 200


def test_a_record_the_database_refuses_is_quarantined_and_the_rest_of_its_page_stored(account, stella, caplog):
    """A failure no check foresaw (here NaN, which json.loads reads and neither database's JSON takes): the page
    is stored record by record, and only the refused one is quarantined."""
    for conversation_id in "123":
        sent_request(account, conversation_id)
    stella.record("1")
    refused = stella.record("2", custom_properties={"score": float("nan")})
    stella.record("3")

    pull = stella_feedback_pull(account, now=NOW)

    assert (pull.error, pull.caught_up, pull.created, pull.linked, pull.quarantined) == ("", True, 2, 2, 1)
    assert sorted(Feedback.objects.values_list("ext_interaction_id", flat=True)) == ["1", "3"]
    assert sum(requested for requested, *_ in counts(account).values()) == 2
    quarantined = QuarantinedFeedback.objects.get()
    assert (quarantined.uuid, quarantined.sequence_id) == (refused, 2)
    assert quarantined.reason.startswith("The database refused to store it (")
    assert quarantined.reason.endswith("): the portal's logs say why.")
    assert '"score": NaN' in quarantined.raw
    assert "stella.feedback.page_refused" in caplog.text and "stella.feedback.record_refused" in caplog.text
    assert StellaSyncState.objects.get(account=account).feedback_cursor == 3


def test_records_without_a_uuid_or_with_an_impossible_date_are_quarantined(account, stella):
    stella.record("1", uuid="x" * 65)  # cut, it could be another record's uuid
    stella.record("2", request_created_at="9999-12-31T23:00:00-05:00")  # past year 9999 in UTC
    stella.record("3", response_received_at="0001-01-01T00:30:00+01:00")  # before year 1
    nameless = stella.record("4")
    del stella.records[nameless]["uuid"]
    stella.record("5")

    pull = stella_feedback_pull(account, now=NOW)

    assert (pull.error, pull.created, pull.quarantined) == ("", 1, 4)
    assert list(Feedback.objects.values_list("ext_interaction_id", flat=True)) == ["5"]
    assert list(QuarantinedFeedback.objects.order_by("sequence_id").values_list("sequence_id", "uuid", "reason")) == [
        (1, "x" * 64, "Its uuid is longer than 64 characters."),
        (
            2,
            "rec-000002",
            "Its request_created_at (9999-12-31T23:00:00-05:00) is outside the dates the portal can store.",
        ),
        (
            3,
            "rec-000003",
            "Its response_received_at (0001-01-01T00:30:00+01:00) is outside the dates the portal can store.",
        ),
        (4, "", "A feedback record from Stella has no uuid"),
    ]
    assert StellaSyncState.objects.get(account=account).feedback_cursor == 5


def test_a_version_stella_corrects_is_stored_and_leaves_the_quarantine(account, stella):
    request = sent_request(account, "42")
    uuid = stella.record("42\x00")
    stella_feedback_pull(account, now=NOW)
    assert QuarantinedFeedback.objects.filter(uuid=uuid).exists()
    StellaSyncState.objects.filter(account=account).update(feedback_cursor=None)  # read again from the start
    stella_feedback_pull(account, now=NOW + timedelta(minutes=15))
    assert QuarantinedFeedback.objects.count() == 1  # not twice

    stella.record(uuid=uuid, ext_interaction_id="42")  # Stella mends it: a new sequence id
    pull = stella_feedback_pull(account, now=NOW + timedelta(minutes=30))

    assert (pull.created, pull.quarantined) == (1, 0)
    assert Feedback.objects.get(uuid=uuid).survey_request == request
    assert not QuarantinedFeedback.objects.exists()


def test_two_pulls_of_one_account_store_a_page_and_quarantine_its_poison_once(account, stella):
    stella.record("1")
    stella.record("2\x00")
    stella.record("3", custom_properties={"score": float("nan")})  # refused: the page goes record by record

    class Overtaken:
        """The real client, but another pull of the account runs to its end while the first page is read."""

        def __init__(self) -> None:
            self.client = stella_data_client(account.integration)
            self.overtaken = False

        def feedback_page(self, *, after, limit):
            if not self.overtaken:
                self.overtaken = True
                assert stella_feedback_pull(account, now=NOW).quarantined == 2
            return self.client.feedback_page(after=after, limit=limit)

    late = stella_feedback_pull(account, now=NOW, client=Overtaken())

    assert (late.pages, late.created, late.quarantined, late.error) == (0, 0, 0, "")
    assert list(Feedback.objects.values_list("ext_interaction_id", flat=True)) == ["1"]
    assert QuarantinedFeedback.objects.count() == 2
    state = StellaSyncState.objects.get(account=account)
    assert (state.feedback_cursor, state.feedback_records) == (3, 1)


def test_quarantined_records_have_a_read_only_page_showing_the_raw_record_escaped(admin_client, account, stella):
    stella.record("<b>7\x00</b>", answers=commented("<script>alert('hi')</script>"))
    stella_feedback_pull(account, now=NOW)
    quarantined = QuarantinedFeedback.objects.get()

    page = admin_client.get(reverse("admin:surveys_quarantinedfeedback_change", args=[quarantined.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in content and "Delete" not in content
    assert "&lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt;" in content and "<script>alert" not in content
    assert "&lt;b&gt;7\\u0000&lt;/b&gt;" in content  # the NUL as its escape, in the raw record
    assert "&lt;b&gt;7\ufffd&lt;/b&gt;" in content  # and the conversation id as far as it can be shown
    listing = admin_client.get(reverse("admin:surveys_quarantinedfeedback_changelist")).content.decode()
    assert "&lt;b&gt;7\ufffd&lt;/b&gt;" in listing and "<b>7" not in listing


def test_employees_stella_lists_with_unstorable_text_are_kept_cleaned(account, stella):
    stella.employee("ada@support.example")
    stella.employees[0]["first_name"] = "A\ud800da\x00"
    stella.employee("bo@support.example")
    stella.employees[1]["id"] = "2\x00"  # nothing to keep it by

    result = stella_employees_sync(account, now=NOW)

    assert (result.error, result.employees) == ("", 1)
    assert list(StellaEmployee.objects.values_list("name", "email")) == [("A\ufffdda\ufffd", "ada@support.example")]


# ---- Reconciling -----------------------------------------------------------------------------------------------


def ambiguous_request(account, conversation_id: str, *, called_at) -> SurveyRequest:
    request = SurveyRequestFactory(account=account, conversation_id=conversation_id, status=S.AMBIGUOUS)
    count_survey_request_recorded(request)
    call = ApiRequest.objects.create(
        survey_request=request, account=account, mode="test", url=f"{STELLA}/v1/requests", outcome="ambiguous"
    )
    ApiRequest.objects.filter(pk=call.pk).update(created_at=called_at)
    return request


def test_an_ambiguous_request_stella_has_a_record_of_is_sent(account, stella):
    request = ambiguous_request(account, "300", called_at=CREATED)
    uuid = stella.record("300")

    pull = stella_feedback_pull(account, now=NOW)

    request.refresh_from_db()
    assert pull.reconciled is not None and pull.reconciled.confirmed_sent == 1
    assert request.status == S.SENT
    assert request.status_detail == f"Stella reports it: record {uuid}, created {CREATED:%Y-%m-%d %H:%M} UTC"
    assert request.reconcile_flag == Flag.NONE
    # The status page's counts moved with it.
    assert dict(DailyCount.objects.filter(account=account).values_list("kind", "count")) == {"failed": 0, "sent": 1}


def test_requests_stella_hasnt_reported_in_time_are_flagged(account, stella):
    old_ambiguous = ambiguous_request(account, "400", called_at=NOW - timedelta(hours=25))
    new_ambiguous = ambiguous_request(account, "401", called_at=NOW - timedelta(hours=2))
    old_sent = sent_request(account, "402", sent_at=NOW - timedelta(hours=25))
    old_do_not_send = sent_request(account, "403", sent_at=NOW - timedelta(hours=25), decision="do_not_send")
    new_sent = sent_request(account, "404", sent_at=NOW - timedelta(hours=2))
    reported = sent_request(account, "405", sent_at=NOW - timedelta(hours=25))
    live = sent_request(account, "406", sent_at=NOW - timedelta(hours=25), mode="live")  # the other key's
    stella.record("405")

    pull = stella_feedback_pull(account, now=NOW)

    flags = dict(SurveyRequest.objects.values_list("conversation_id", "reconcile_flag"))
    assert flags == {
        old_ambiguous.conversation_id: Flag.UNCONFIRMED_AMBIGUOUS,
        new_ambiguous.conversation_id: Flag.NONE,
        old_sent.conversation_id: Flag.UNREPORTED_SENT,
        old_do_not_send.conversation_id: Flag.UNREPORTED_SENT,
        new_sent.conversation_id: Flag.NONE,
        reported.conversation_id: Flag.NONE,
        live.conversation_id: Flag.NONE,
    }
    assert pull.reconciled is not None
    assert (pull.reconciled.flagged_ambiguous, pull.reconciled.flagged_unreported) == (1, 2)
    assert SurveyRequest.objects.get(pk=old_sent.pk).reconciled_at == NOW

    # A day later: the younger ones are due now; those flagged or checked already aren't counted again.
    later = survey_requests_reconcile(account, now=NOW + timedelta(hours=24))
    assert (later.flagged_ambiguous, later.flagged_unreported) == (1, 1)


def test_nothing_is_flagged_while_the_pull_hasnt_read_all_stella_has(account, stella):
    sent_request(account, "500", sent_at=NOW - timedelta(hours=25))
    for conversation_id in "123":
        stella.record(conversation_id)
    stella.page_size = 1

    pull = stella_feedback_pull(account, now=NOW, max_pages=2)

    assert not pull.caught_up
    assert not SurveyRequest.objects.exclude(reconcile_flag="").exists()


def test_a_flag_clears_when_stella_reports_the_request(account, stella):
    late = sent_request(account, "600", sent_at=NOW - timedelta(hours=25))
    stella_feedback_pull(account, now=NOW)
    assert SurveyRequest.objects.get(pk=late.pk).reconcile_flag == Flag.UNREPORTED_SENT

    stella.record("600", created=NOW)
    pull = stella_feedback_pull(account, now=NOW + timedelta(minutes=15))

    late.refresh_from_db()
    assert pull.reconciled is not None and pull.reconciled.cleared == 1
    assert (late.reconcile_flag, late.reconciled_at) == (Flag.NONE, NOW + timedelta(minutes=15))


def test_a_resent_ambiguous_request_loses_its_flag(account):
    request = ambiguous_request(account, "700", called_at=NOW - timedelta(hours=25))
    survey_requests_reconcile(account, now=NOW)
    assert SurveyRequest.objects.get(pk=request.pk).reconcile_flag == Flag.UNCONFIRMED_AMBIGUOUS
    SurveyRequest.objects.filter(pk=request.pk).update(status=S.SCHEDULED)  # as a resend leaves it

    assert survey_requests_reconcile(account, now=NOW + timedelta(minutes=15)).cleared == 1
    assert SurveyRequest.objects.get(pk=request.pk).reconcile_flag == Flag.NONE


def test_linked_feedback_keeps_a_sent_request_unflagged(account):
    request = sent_request(account, "800", sent_at=NOW - timedelta(hours=25))
    FeedbackFactory(account=account, survey_request=request)
    assert survey_requests_reconcile(account, now=NOW).flagged_unreported == 0


# ---- Every account ---------------------------------------------------------------------------------------------


def test_one_accounts_failure_doesnt_stop_the_others(account, mock, stella, caplog):
    refused = AccountFactory(
        integration__stella_api_secret="another-secret-9999", integration__stella_api_url="https://refused.example"
    )
    mock.add(responses.GET, "https://refused.example/v2/employees", status=401, json={"message": "Unauthorized"})
    mock.add(responses.GET, "https://refused.example/v2/data", status=401, json={"message": "Unauthorized"})
    crashing = AccountFactory(
        integration__stella_api_secret="crash-secret-0000", integration__stella_api_url="https://crash.example"
    )
    mock.add(responses.GET, "https://crash.example/v2/employees", body=RuntimeError("the library broke"))
    mock.add(responses.GET, "https://crash.example/v2/data", body=RuntimeError("the library broke"))
    stella.employee("tess@support.example")
    stella.record("900")

    assert stella_sync_all(now=NOW) == 1

    assert Feedback.objects.filter(account=account).count() == 1
    assert StellaEmployee.objects.filter(account=account).count() == 1
    refused_state = StellaSyncState.objects.get(account=refused)
    assert "rejected" in refused_state.employees_error and "rejected" in refused_state.feedback_error
    crashed_state = StellaSyncState.objects.get(account=crashing)
    assert crashed_state.feedback_error == "Unexpected error (RuntimeError): see the portal's logs"
    assert "stella.feedback.crashed" in caplog.text


def test_a_crash_keeps_its_traceback_for_the_operator_shown_escaped_on_the_account_page(
    account, mock, stella, admin_client, caplog
):
    broken = RuntimeError(f"<script>alert('broke')</script> near {SECRET} " + "x" * 20_000)
    mock.replace(responses.GET, f"{STELLA}/v2/data", body=broken)
    mock.replace(responses.GET, f"{STELLA}/v2/employees", body=RuntimeError("<b>bold</b> employees"))

    assert stella_sync_all(now=NOW) == 0

    state = StellaSyncState.objects.get(account=account)
    assert state.feedback_error == "Unexpected error (RuntimeError): see the portal's logs"
    # Bounded (portal/errors.py): its start, where the first exception was raised, and its end, where the last was.
    assert state.feedback_traceback.startswith("Traceback (most recent call last):")
    assert "characters cut" in state.feedback_traceback and len(state.feedback_traceback) < TRACEBACK_LENGTH + 100
    assert state.feedback_traceback.rstrip().endswith("x" * 100)
    assert state.employees_traceback.startswith("Traceback (most recent call last):")
    assert "RuntimeError: <b>bold</b> employees" in state.employees_traceback
    short = RuntimeError(f"<script>alert('broke')</script> near {SECRET}")
    mock.replace(responses.GET, f"{STELLA}/v2/data", body=short)
    stella_sync_all(now=NOW + timedelta(minutes=15))
    state.refresh_from_db()
    assert f"RuntimeError: <script>alert('broke')</script> near ••••{SECRET[-4:]}" in state.feedback_traceback
    assert SECRET not in state.feedback_traceback

    page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk])).content.decode()
    assert "⚠ Unexpected error (RuntimeError): see the portal&#x27;s logs" in page  # what a CSM reads
    assert '<details class="traceback"><summary>Traceback, for an operator</summary>' in page
    assert "RuntimeError: &lt;script&gt;alert(&#x27;broke&#x27;)&lt;/script&gt; near ••••" in page
    assert "RuntimeError: &lt;b&gt;bold&lt;/b&gt; employees" in page
    assert "<script>alert" not in page and "<b>bold</b>" not in page and SECRET not in page

    # A CSM's "Pull feedback now" that crashes says so, rather than a server error, and keeps its traceback too.
    response = admin_client.post(reverse("admin:surveys_account_stella_sync", args=[account.pk, "feedback"]))
    assert response.status_code == 302
    assert "stopped: Unexpected error (RuntimeError)" in admin_client.get(response.url).content.decode()

    # The next run that succeeds clears the error and its traceback.
    mock.replace(responses.CallbackResponse(responses.GET, f"{STELLA}/v2/data", callback=stella._data))
    stella_feedback_pull(account, now=NOW + timedelta(minutes=30))
    state.refresh_from_db()
    assert (state.feedback_error, state.feedback_traceback) == ("", "")
    assert state.employees_traceback  # that job hasn't run again


def test_employees_are_synced_hourly_and_feedback_every_run(account, stella):
    stella.employee("tess@support.example")
    stella_sync_all(now=NOW)
    stella_sync_all(now=NOW + timedelta(minutes=15))
    assert (stella.employee_calls, len(stella.data_calls)) == (1, 2)
    stella_sync_all(now=NOW + timedelta(hours=1))
    assert (stella.employee_calls, len(stella.data_calls)) == (2, 3)


# ---- In the admin ----------------------------------------------------------------------------------------------


def test_the_account_page_shows_the_sync_and_never_the_secret(admin_client, account, stella):
    nia = TeammateFactory(account=account, name="Nia Newhire", email="nia@support.example")
    stella_employees_sync(account, now=NOW)
    page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk])).content.decode()
    assert SECRET not in page and SECRET[:-4] not in page
    assert "stored: ••••s3cr" in page
    assert "Stella sync" in page and "Sync employees now" in page
    assert reverse("admin:surveys_teammate_change", args=[nia.pk]) in page

    pull_now = reverse("admin:surveys_account_stella_sync", args=[account.pk, "feedback"])
    assert pull_now in page
    assert "Pull feedback from Stella for" in admin_client.get(pull_now).content.decode()
    assert stella.data_calls == []  # asking is not doing
    response = admin_client.post(pull_now)
    assert response.status_code == 302
    page = admin_client.get(response.url).content.decode()
    assert "0 feedback records read in 0 pages" in page
    assert stella.data_calls == [None]


def test_the_settings_form_keeps_the_secret_and_reconcile_time_when_left_empty(account):
    integration = account.integration
    data = {name: value for name, value in model_to_dict(integration).items() if value is not None}
    data.update(channel_delay="0", suppression_window="0", reconcile_after="", stella_api_secret="")
    data.update(test_api_key="", production_api_key="", intercom_access_token="")
    form = IntegrationSettingsForm(data=data, instance=integration)
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["stella_api_secret"], form.cleaned_data["reconcile_after"]) == (
        SECRET,
        timedelta(hours=24),
    )
    assert "stored: ••••s3cr" in str(form["stella_api_secret"]) and SECRET not in str(form["stella_api_secret"])

    typed = IntegrationSettingsForm(
        data={**data, "stella_api_secret": "new-secret-1111-2222-n3w0", "reconcile_after": "10m"}, instance=integration
    )
    assert not typed.is_valid() and "reconcile_after" in typed.errors
    assert "new-secret" not in str(typed["stella_api_secret"])  # what was typed never comes back either
    assert typed.cleaned_data["stella_api_secret"] == "new-secret-1111-2222-n3w0"


def test_feedback_and_stella_employees_have_read_only_pages(admin_client, account):
    request = sent_request(account, "950")
    record = FeedbackFactory(account=account, survey_request=request, star_rating=5, comment="Lovely")
    employee = StellaEmployee.objects.create(
        account=account, stella_id="1", email="tess@support.example", synced_at=NOW
    )
    for name, obj in (("feedback", record), ("stellaemployee", employee)):
        listing = admin_client.get(reverse(f"admin:surveys_{name}_changelist"))
        assert listing.status_code == 200
        page = admin_client.get(reverse(f"admin:surveys_{name}_change", args=[obj.pk])).content.decode()
        assert 'name="_save"' not in page and "Delete" not in page  # evidence: nothing to edit or delete
    assert (
        reverse("admin:surveys_surveyrequest_change", args=[request.pk])
        in admin_client.get(reverse("admin:surveys_feedback_change", args=[record.pk])).content.decode()
    )


def test_staff_without_change_permission_cant_run_a_sync(account, stella):
    client = Client()
    client.force_login(User.objects.create_user("viewer", is_staff=True))
    response = client.post(reverse("admin:surveys_account_stella_sync", args=[account.pk, "employees"]))
    assert response.status_code == 403
    assert stella.employee_calls == 0


# ---- Against the sandbox's Stella ------------------------------------------------------------------------------


@pytest.fixture
def sandbox_account(live_server, settings):
    settings.STELLA_API_URL = f"{live_server.url}/sandbox/stella"
    settings.SANDBOX_STELLA_API_SECRET = "sandbox-api-secret"
    settings.SANDBOX_FEEDBACK_SHARE = 1.0
    settings.SANDBOX_FEEDBACK_DELAY_SECONDS = 3600  # answered when the test says so
    sandbox_people_create()
    return AccountFactory(
        integration__test_api_key="sandbox-test-key-0001",
        integration__production_api_key="sandbox-live-key-0002",
        integration__stella_api_secret="sandbox-api-secret",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_requests_sent_to_the_sandbox_come_back_as_feedback(sandbox_account):
    account = sandbox_account
    tess = TeammateFactory(account=account, intercom_id="4100001", name="Tess", email="tess@support.example")
    nia = TeammateFactory(account=account, intercom_id="4100004", name="Nia", email="nia@support.example")
    now = timezone.now()
    request = SurveyRequestFactory(
        account=account, closed_at=now - timedelta(minutes=5), customer_email="ada@customer.example"
    )
    assert survey_request_send(request.pk, now=now).status == S.SENT

    assert stella_sync_all(now=now) == 1

    assert dict(Teammate.objects.values_list("pk", "stella_match")) == {tess.pk: Match.EMAIL, nia.pk: Match.UNMATCHED}
    record = Feedback.objects.get(account=account)
    assert (record.survey_request, record.employee_email, record.star_rating) == (
        request,
        "tess@support.example",
        None,
    )
    # The made-up customer answers: Stella re-sequences the record, the next pull updates it.
    StellaSandboxFeedback.objects.update(respond_at=timezone.now() - timedelta(seconds=1))
    stella_sync_all(now=now + timedelta(minutes=15))
    record = Feedback.objects.get(account=account)
    assert record.star_rating in range(1, 6) and record.response_received_at is not None
    assert counts(account) == {("test", "tess@support.example", "chat"): (1, 1, 1, record.star_rating, 1)}
    state = StellaSyncState.objects.get(account=account)
    assert (state.feedback_records, state.feedback_error, state.employees_error) == (1, "", "")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_ambiguous_call_that_reached_the_sandbox_is_confirmed_sent(sandbox_account):
    account = sandbox_account
    now = timezone.now()
    # Our call reached Stella but its answer was lost: Stella has the request, we don't know it.
    body = {
        "channel": "chat",
        "employee": {"email": "tess@support.example"},
        "customer": {"email": "ada@customer.example"},
        "ext_interaction_id": "amb-1",
    }
    answer = Client().post(
        "/sandbox/stella/v1/requests",
        data=json.dumps(body),
        content_type="application/json",
        headers={"x-api-key": "sandbox-test-key-0001"},
    )
    assert answer.status_code == 200
    request = ambiguous_request(account, "amb-1", called_at=now - timedelta(minutes=1))

    pull = stella_feedback_pull(account, now=now)

    request.refresh_from_db()
    assert pull.reconciled is not None and pull.reconciled.confirmed_sent == 1
    assert request.status == S.SENT
    assert request.status_detail.startswith("Stella reports it: record ")


def test_what_a_pull_and_a_sync_did_reads_in_words_one_or_many():
    assert str(FeedbackPull(pages=1, records=1, created=1, linked=1, caught_up=True)).startswith(
        "1 feedback record read in 1 page (1 new, 1 linked to survey requests)"
    )
    assert str(EmployeeSync(employees=1, matched=1)) == (
        "1 Stella employee (0 removed); 1 teammate matched, 0 Stella won't recognise"
    )
    assert str(EmployeeSync(employees=4, matched=2)).startswith("4 Stella employees (0 removed); 2 teammates matched")
