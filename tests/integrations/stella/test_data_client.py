"""The Data Return and User Management client, over real HTTP: against the sandbox's Stella on the live
server, and against a scripted server on 127.0.0.1 for the answers the sandbox doesn't give."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import requests
from django.utils import timezone

from integrations.stella import data as stella_data
from integrations.stella.data import (
    FeedbackPage,
    FeedbackRecord,
    StellaAuthRejected,
    StellaDataClient,
    StellaDataError,
    StellaEmployeeRecord,
    StellaRateLimited,
    stella_jwt,
)
from sandbox.models import StellaSandboxEmployee, StellaSandboxFeedback

# Stella's API secrets are not ours to lengthen: PyJWT's warning about short ones is noise (see data.py).
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

SECRET = "sandbox-api-secret-for-tests"
TEST_KEY, LIVE_KEY = "sandbox-test-key-0001", "sandbox-live-key-0002"


def test_the_jwt_is_hs256_signed_with_the_secret_and_says_when_it_was_issued():
    now = datetime(2026, 11, 29, 12, 0, 5, 900_000, tzinfo=UTC)
    token = stella_jwt("the-api-secret", now=now)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, "the-api-secret", algorithms=["HS256"], options={"verify_iat": False})
    assert claims == {"iat": int(now.timestamp())}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret", algorithms=["HS256"])


# ---- against the sandbox ----


@pytest.fixture
def stella(live_server, settings):
    """The sandbox's Stella on the live server; `send(ext_id)` makes one accepted request over HTTP."""
    settings.SANDBOX_STELLA_API_SECRET = SECRET
    settings.SANDBOX_FEEDBACK_SHARE = 0.0
    settings.SANDBOX_FEEDBACK_DELAY_SECONDS = 20
    StellaSandboxEmployee.objects.create(email="tess@support.example", first_name="Tess", last_name="Ode")
    base_url = f"{live_server.url}/sandbox/stella"

    def send(ext_interaction_id: str, *, key: str = TEST_KEY) -> None:
        body = {
            "channel": "chat",
            "employee": {"email": "tess@support.example"},
            "customer": {"email": "ada@customer.example"},
            "ext_interaction_id": ext_interaction_id,
        }
        with requests.Session() as session:
            response = session.post(f"{base_url}/v1/requests", json=body, headers={"x-api-key": key}, timeout=5)
        assert response.status_code == 200, response.text

    send.base_url = base_url  # type: ignore[attr-defined]
    return send


def client(stella, *, key=TEST_KEY, secret=SECRET, base_url=None) -> StellaDataClient:
    return StellaDataClient(base_url=base_url or stella.base_url, api_key=key, api_secret=secret)


def all_pages(data_client: StellaDataClient, *, after=None, limit=1000) -> list[list[FeedbackRecord]]:
    pages = []
    while True:
        page = data_client.feedback_page(after=after, limit=limit)
        pages.append(page.records)
        if page.cursor is None:
            return pages
        after = page.cursor


@pytest.mark.slow
def test_feedback_pages_follow_the_cursor_to_an_empty_page(stella):
    for number in range(5):
        stella(f"c-{number}")
    pages = all_pages(client(stella), limit=2)
    assert [[record.ext_interaction_id for record in page] for page in pages] == [
        ["c-0", "c-1"],
        ["c-2", "c-3"],
        ["c-4"],
        [],
    ]
    first = pages[0][0]
    assert (first.sequence_id, first.channel, first.request_delivery_status) == (1, "chat", "Delivered")
    assert (first.employee_email, first.employee_name, first.star_rating, first.comment) == (
        "tess@support.example",
        "Tess Ode",
        None,
        "",
    )
    assert first.request_created_at and timezone.is_aware(first.request_created_at)
    assert first.raw["uuid"] == first.uuid


@pytest.mark.slow
def test_an_answered_record_comes_back_after_the_cursor_with_a_new_sequence_id(stella, settings):
    settings.SANDBOX_FEEDBACK_SHARE = 1.0
    stella("a-1")
    stella("a-2")
    data_client = client(stella)
    before = data_client.feedback_page(after=None).records
    assert [(r.sequence_id, r.star_rating, r.response_received_at) for r in before] == [
        (1, None, None),
        (2, None, None),
    ]
    cursor = before[-1].sequence_id
    assert data_client.feedback_page(after=cursor) == FeedbackPage(records=[], unreadable=[], cursor=None)

    StellaSandboxFeedback.objects.update(respond_at=timezone.now() - timedelta(seconds=1))  # 20 s have passed
    answered = data_client.feedback_page(after=cursor).records
    assert [record.uuid for record in answered] == [record.uuid for record in before]
    assert [record.sequence_id for record in answered] == [3, 4]
    for record in answered:
        assert record.star_rating in {1, 2, 3, 4, 5} and record.comment
        assert record.response_received_at is not None
        assert record.answers["agent_star_rating"]["comment"] == record.comment
    assert data_client.feedback_page(after=4).cursor is None


@pytest.mark.slow
def test_each_key_sees_only_the_feedback_its_mode_made(stella):
    stella("test-1")
    stella("live-1", key=LIVE_KEY)
    assert [r.ext_interaction_id for r in client(stella).feedback_page(after=None).records] == ["test-1"]
    assert [r.ext_interaction_id for r in client(stella, key=LIVE_KEY).feedback_page(after=None).records] == ["live-1"]


@pytest.mark.slow
def test_a_wrong_secret_is_rejected_without_showing_any_secret(stella):
    wrong = "the-wrong-api-secret-9876"
    with pytest.raises(StellaAuthRejected) as rejected:
        client(stella, secret=wrong).feedback_page(after=None)
    assert rejected.value.status_code == 401
    message = str(rejected.value)
    assert "rejected the API key or API secret" in message
    assert wrong not in message and "9876" not in message and TEST_KEY not in message and "0001" not in message
    with pytest.raises(StellaAuthRejected):
        client(stella, key="a-key-stella-never-issued", secret=SECRET).employees()


@pytest.mark.slow
def test_a_rate_limit_says_how_long_to_wait(stella):
    with pytest.raises(StellaRateLimited) as limited:
        client(stella, key="sandbox-test-ratelimited-1").feedback_page(after=None)
    assert (limited.value.retry_after, limited.value.status_code) == (7.0, 429)
    assert isinstance(limited.value, StellaDataError)


@pytest.mark.slow
def test_a_server_error_is_a_data_error(stella):
    with pytest.raises(StellaDataError) as failed:
        client(stella, key="sandbox-test-unavailable-1").feedback_page(after=None)
    assert (str(failed.value), failed.value.status_code) == ("Stella answered 503", 503)
    assert not isinstance(failed.value, StellaAuthRejected | StellaRateLimited)


def test_stella_out_of_reach_is_a_data_error(refused_url):
    unreachable = StellaDataClient(base_url=refused_url, api_key=TEST_KEY, api_secret=SECRET)
    with pytest.raises(StellaDataError, match=r"^Stella could not be reached: ConnectionError$") as failed:
        unreachable.feedback_page(after=None)
    assert failed.value.status_code is None


@pytest.mark.slow
def test_employees_are_listed_across_pages(stella, monkeypatch):
    monkeypatch.setattr(stella_data, "EMPLOYEES_PAGE_SIZE", 2)
    StellaSandboxEmployee.objects.create(email="  Sam@Support.Example ", custom_id="emp-2")
    StellaSandboxEmployee.objects.create(custom_id="emp-3", active=False)
    StellaSandboxEmployee.objects.create(email="kim@support.example")
    StellaSandboxEmployee.objects.create(email="lee@support.example")
    employees = client(stella).employees()
    assert [(e.email, e.custom_id, e.active) for e in employees] == [
        ("tess@support.example", "", True),
        ("sam@support.example", "emp-2", True),
        ("", "emp-3", False),
        ("kim@support.example", "", True),
        ("lee@support.example", "", True),
    ]
    tess = employees[0]
    assert (tess.first_name, tess.last_name) == ("Tess", "Ode")
    assert tess.id == str(StellaSandboxEmployee.objects.get(email="tess@support.example").id)


# ---- against a scripted server, for what the sandbox doesn't answer ----


@dataclass
class Scripted:
    answers: list[tuple[int, Any, dict[str, str]]]
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""


@contextmanager
def scripted(*answers: tuple[int, Any, dict[str, str]]) -> Iterator[Scripted]:
    """A server on 127.0.0.1 that answers GETs from the script, in turn (the last one again and again)."""
    script = Scripted(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            script.received.append((self.path, dict(self.headers)))
            status, body, headers = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            payload = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        httpd.shutdown()
        httpd.server_close()


def scripted_client(url: str) -> StellaDataClient:
    return StellaDataClient(base_url=url + "/", api_key="key-123456789", api_secret=SECRET, session=requests.Session())


RECORD = {
    "uuid": "5b7c0e4e-1d0e-4a7a-9d8e-0c1c2f3a4b5c",
    "sequence_id": 42,
    "ext_interaction_id": 1234567,
    "channel": "email",
    "is_recovery": False,
    "request_created_at": "2026-11-20T09:15:00-05:00",
    "request_sent_at": "2026-11-20T09:16:00Z",
    "response_received_at": "yesterday-ish",
    "request_delivery_status": "Not sent: suppression period",
    "employee": {"email": " Tess@Support.Example ", "custom_id": "emp-1", "first_name": "Tess", "last_name": ""},
    "answers": {
        "agent_star_rating": {
            "question_id": "q1",
            "comment": "Great",
            "selected_options": {"o5": {"option_id": "o5", "option_text": "5 stars", "integer_value": 5}},
        },
        "nps": {"question_id": "q2", "selected_options": {}},
    },
}


def test_the_client_sends_the_key_and_the_raw_jwt_and_reads_a_wrapped_page():
    with scripted((200, {"data": [RECORD]}, {})) as server:
        [record] = scripted_client(server.url).feedback_page(after=41, limit=10).records
    path, headers = server.received[0]
    assert path == "/v2/data?after=41&limit=10"
    assert headers["x-api-key"] == "key-123456789"
    assert not headers["Authorization"].startswith("Bearer")
    claims = jwt.decode(headers["Authorization"], SECRET, algorithms=["HS256"], options={"require": ["iat"]})
    assert abs(claims["iat"] - timezone.now().timestamp()) < 5
    assert (record.sequence_id, record.ext_interaction_id, record.star_rating, record.comment) == (
        42,
        "1234567",
        5,
        "Great",
    )
    assert record.request_created_at == datetime(2026, 11, 20, 14, 15, tzinfo=UTC)
    assert record.response_received_at is None  # not a date: None, not a crash
    assert (record.employee_email, record.employee_name) == ("tess@support.example", "Tess")
    assert record.request_delivery_status == "Not sent: suppression period"


def test_the_first_page_has_no_cursor_and_records_come_in_sequence_order():
    later = {**RECORD, "uuid": "u-2", "sequence_id": 43}
    with scripted((200, [later, RECORD], {})) as server:
        page = scripted_client(server.url).feedback_page(after=None)
    assert server.received[0][0] == "/v2/data?limit=1000"
    assert ([r.sequence_id for r in page.records], page.cursor) == ([42, 43], 43)


def test_a_rate_limit_without_retry_after_waits_a_minute():
    with scripted((429, {"message": "Too Many Requests"}, {})) as server:
        with pytest.raises(StellaRateLimited) as limited:
            scripted_client(server.url).feedback_page(after=None)
    assert limited.value.retry_after == 60.0


def test_a_redirect_is_not_followed(refused_url):
    with scripted((302, {}, {"Location": f"{refused_url}/elsewhere"})) as server:
        with pytest.raises(StellaDataError, match=f"redirecting to {refused_url}/elsewhere") as failed:
            scripted_client(server.url).feedback_page(after=None)
    assert failed.value.status_code == 302 and len(server.received) == 1


def test_a_refusal_in_stellas_words_shows_them_without_our_key():
    with scripted((422, {"message": "Bad key key-123456789 for after"}, {})) as server:
        with pytest.raises(StellaDataError) as failed:
            scripted_client(server.url).feedback_page(after=None)
    assert "key-123456789" not in str(failed.value) and "Stella answered 422 for the feedback" in str(failed.value)


@pytest.mark.parametrize(
    "body",
    [
        {"message": "ok"},
        "text",
        [{"uuid": "u", "sequence_id": "x"}],
        ["a record?", {"uuid": "u", "sequence_id": 2**63}],
    ],
)
def test_a_page_we_cannot_read_or_page_past_is_a_data_error(body):
    with scripted((200, body, {})) as server:
        with pytest.raises(StellaDataError):
            scripted_client(server.url).feedback_page(after=None)


def test_a_record_that_breaks_the_contract_comes_back_unreadable_and_the_page_still_moves_on():
    too_deep: dict[str, Any] = {"uuid": "u-deep", "sequence_id": 46}
    nested = too_deep
    for _ in range(40):
        nested["more"] = {}
        nested = nested["more"]
    items = [
        {**RECORD, "uuid": "u-1", "sequence_id": 47},
        {"sequence_id": 43, "ext_interaction_id": "c-9", "comment": "no uuid"},
        {"uuid": "u-2", "sequence_id": "forty-four"},
        {"uuid": "u-3", "sequence_id": 2**64},
        ["not", "an", "object"],
        too_deep,
    ]
    with scripted((200, items, {})) as server:
        page = scripted_client(server.url).feedback_page(after=42)
    assert [record.uuid for record in page.records] == ["u-1"]
    assert [(item.sequence_id, item.uuid, item.ext_interaction_id) for item in page.unreadable] == [
        (43, "", "c-9"),
        (None, "u-2", ""),
        (None, "u-3", ""),
        (None, "", ""),
        (46, "u-deep", ""),
    ]
    assert [item.reason for item in page.unreadable] == [
        "A feedback record from Stella has no uuid",
        "Stella's feedback record u-2 has no 64-bit integer sequence_id",
        "Stella's feedback record u-3 has no 64-bit integer sequence_id",
        "A feedback record from Stella is not a JSON object",
        "A feedback record from Stella nests deeper than 32 levels",
    ]
    assert page.unreadable[1].raw == {"uuid": "u-2", "sequence_id": "forty-four"}  # as sent
    assert json.dumps(page.unreadable[4].raw).count("more") == 32  # what lies deeper is cut
    assert page.cursor == 47


def test_free_text_is_made_storable_and_identifiers_are_kept_as_sent():
    data = {
        **RECORD,
        "uuid": "u-\x00",
        "ext_interaction_id": "12\x0034",
        "channel": "chat\ud800",
        "request_delivery_status": "Deliv\x00ered",
        "employee": {"email": "T\x00@support.example", "custom_id": "E\udfff", "first_name": "T\x00ss"},
    }
    data["answers"] = {"agent_star_rating": {**RECORD["answers"]["agent_star_rating"], "comment": "Gr\x00eat \ud83d"}}
    record = FeedbackRecord.from_json(data)
    assert (record.uuid, record.ext_interaction_id) == ("u-\x00", "12\x0034")
    assert (record.channel, record.request_delivery_status, record.comment) == (
        "chat\ufffd",
        "Deliv\ufffdered",
        "Gr\ufffdeat \ufffd",
    )
    assert (record.employee_email, record.employee_custom_id, record.employee_name) == (
        "t\ufffd@support.example",
        "E\ufffd",
        "T\ufffdss",
    )
    assert record.raw is data


def test_employee_pages_follow_next_page_on_our_own_host_only():
    first = {
        "employees": [{"id": 7, "email": "A@B.example", "custom_employee_id": "c7", "status": "active"}],
        "meta": {"next_page": "https://elsewhere.example/api/v2/employees?after=7"},
    }
    second = {"data": [{"id": 8, "email": "c@d.example", "status": "deactivated"}], "meta": {}}
    with scripted((200, first, {}), (200, second, {})) as server:
        employees = scripted_client(server.url).employees()
    assert [path for path, _ in server.received] == [
        "/v2/employees?number_of_employees=500",
        "/v2/employees?number_of_employees=500&after=7",
    ]
    assert employees == [
        StellaEmployeeRecord(id="7", email="a@b.example", custom_id="c7", first_name="", last_name="", active=True),
        StellaEmployeeRecord(id="8", email="c@d.example", custom_id="", first_name="", last_name="", active=False),
    ]


def test_an_employee_list_as_a_plain_array_is_one_page():
    with scripted((200, [{"id": "x1", "custom_id": "emp-1", "active": False}], {})) as server:
        [employee] = scripted_client(server.url).employees()
    assert (employee.id, employee.custom_id, employee.active, len(server.received)) == ("x1", "emp-1", False, 1)


def test_a_next_page_that_repeats_itself_ends_the_list():
    looping = {"employees": [{"id": 1}], "meta": {"next_page": "/v2/employees?external_id=1"}}
    with scripted((200, looping, {})) as server:
        assert len(scripted_client(server.url).employees()) == 2
    assert len(server.received) == 2


# ---- the record on its own ----


def test_a_record_with_only_its_identity_is_read_with_defaults():
    record = FeedbackRecord.from_json({"uuid": "u-1", "sequence_id": "7"})
    assert (record.sequence_id, record.ext_interaction_id, record.channel, record.is_recovery) == (7, "", "", False)
    assert (record.request_created_at, record.star_rating, record.comment, record.answers) == (None, None, "", {})
    assert (record.employee_email, record.employee_custom_id, record.employee_name) == ("", "", "")


@pytest.mark.parametrize(
    "data",
    [
        {"sequence_id": 1},
        {"uuid": "", "sequence_id": 1},
        {"uuid": "u"},
        {"uuid": "u", "sequence_id": True},
        {"uuid": "u", "sequence_id": 1.5},
    ],
)
def test_a_record_without_uuid_or_integer_sequence_id_is_refused(data):
    with pytest.raises(StellaDataError):
        FeedbackRecord.from_json(data)


def test_a_skipped_star_question_has_no_rating():
    answers = {"agent_star_rating": {"question_id": "q1", "comment": "", "selected_options": {}}}
    assert FeedbackRecord.from_json({"uuid": "u", "sequence_id": 1, "answers": answers}).star_rating is None


def test_the_client_never_shows_its_secrets():
    data_client = StellaDataClient(base_url="https://x.example", api_key="key-123456789", api_secret="secret-abcdefgh")
    assert "123456789" not in repr(data_client) and "secret-abcdefgh" not in repr(data_client)
