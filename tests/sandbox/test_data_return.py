"""The sandbox's Stella Data Return (/v2/data) and User Management (/v2/employees), and its Intercom notes."""

import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.test import Client
from django.utils import timezone

from integrations.stella.data import stella_jwt
from sandbox.models import IntercomRecord, IntercomSandboxNote, StellaSandboxEmployee, StellaSandboxFeedback
from sandbox.views import _feedback_hash, _star_rating_for

SECRET = "sandbox-api-secret-for-tests"
TEST_KEY, LIVE_KEY = "sandbox-test-key-1", "sandbox-live-key-2"
# Stella's API secrets are not ours to lengthen: PyJWT's warning about short ones is noise (see data.py).
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

GOOD = {
    "channel": "chat",
    "employee": {"email": "tess@support.example"},
    "customer": {"name": "Ada", "email": "ada@customer.example"},
    "ext_interaction_id": "1",
    "tags": ["vip"],
}


@pytest.fixture(autouse=True)
def sandbox_settings(settings):
    settings.SANDBOX_STELLA_API_SECRET = SECRET
    settings.SANDBOX_FEEDBACK_SHARE = 0.0
    settings.SANDBOX_FEEDBACK_DELAY_SECONDS = 20


@pytest.fixture
def stella(db):
    StellaSandboxEmployee.objects.create(
        email="tess@support.example", custom_id="emp-1", first_name="Tess", last_name="Ode"
    )

    def post(body=GOOD, key=TEST_KEY, **changes):
        return Client().post(
            "/sandbox/stella/v1/requests",
            data=json.dumps({**body, **changes}),
            content_type="application/json",
            headers={"x-api-key": key},
        )

    return post


def token(secret=SECRET, *, iat=None):
    return jwt.encode({"iat": int(iat if iat is not None else time.time())}, secret, algorithm="HS256")


def data(query="", key=TEST_KEY, authorization=None):
    headers = {"x-api-key": key, "Authorization": token() if authorization is None else authorization}
    return Client().get(f"/sandbox/stella/v2/data{query}", headers=headers)


def test_an_accepted_request_becomes_a_feedback_record(stella):
    assert stella().status_code == 200
    response = data()
    assert response.status_code == 200
    [record] = response.json()
    assert record["sequence_id"] == 1 and len(record["uuid"]) == 36
    assert (record["ext_interaction_id"], record["channel"], record["tags"]) == ("1", "chat", ["vip"])
    assert record["request_delivery_status"] == "Delivered" and record["request_sent_at"]
    # Stella shows the employee's profile, whichever of email or custom id the request named them by.
    assert record["employee"] == {
        "custom_id": "emp-1",
        "email": "tess@support.example",
        "first_name": "Tess",
        "last_name": "Ode",
    }
    assert record["customer"]["email"] == "ada@customer.example"
    assert (record["response_received_at"], record["answers"]) == (None, {})


def test_a_do_not_send_request_is_recorded_and_never_answered(stella, settings):
    settings.SANDBOX_FEEDBACK_SHARE = 1.0
    stella(do_not_send=True)
    feedback = StellaSandboxFeedback.objects.get()
    assert (feedback.request_delivery_status, feedback.request_sent_at) == ("Not sent: do not send flag", None)
    assert feedback.respond_at is None


def test_a_refused_request_makes_no_record(stella):
    assert stella(channel="phone").status_code == 400
    assert stella(key="nobody").status_code == 403
    assert not StellaSandboxFeedback.objects.exists()


# Each token is made when its test runs, not when the tests are collected: on a busy machine a run of the whole
# suite takes long enough for "ten minutes from now" or "50 minutes ago" to mean something else by then.
@pytest.mark.parametrize(
    ("key", "authorization"),
    [
        (TEST_KEY, lambda: ""),
        (TEST_KEY, lambda: token("the-wrong-secret")),
        (TEST_KEY, lambda: token(iat=time.time() - 2 * 3600)),  # issued two hours ago
        (TEST_KEY, lambda: token(iat=time.time() + 10 * 60)),  # issued ten minutes from now
        (TEST_KEY, lambda: jwt.encode({"sub": "no-iat"}, SECRET, algorithm="HS256")),
        (TEST_KEY, lambda: jwt.encode({"iat": int(time.time())}, None, algorithm="none")),
        (TEST_KEY, lambda: "not-a-jwt"),
        ("real-key-from-somewhere", lambda: token()),
    ],
)
def test_data_wants_a_good_key_and_a_fresh_jwt_signed_with_the_secret(stella, key, authorization):
    stella()
    for path in ("/sandbox/stella/v2/data", "/sandbox/stella/v2/employees"):
        response = Client().get(path, headers={"x-api-key": key, "Authorization": authorization()})
        assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})


@pytest.mark.parametrize(
    "authorization",
    [
        lambda: token(iat=time.time() + 4 * 60),  # a clock a little ahead
        lambda: token(iat=time.time() - 50 * 60),
        lambda: "Bearer " + token(),
        lambda: stella_jwt(SECRET, now=datetime.now(tz=UTC)),
    ],
)
def test_data_takes_a_jwt_within_its_window(stella, authorization):
    stella()
    assert data(authorization=authorization()).status_code == 200


def test_each_key_sees_the_records_its_company_made_in_its_mode(stella):
    stella(ext_interaction_id="t-1")
    stella(key=LIVE_KEY, ext_interaction_id="l-1")
    stella(ext_interaction_id="t-2")
    stella(key="sandbox-test-other-company", ext_interaction_id="o-1")
    assert [r["ext_interaction_id"] for r in data().json()] == ["t-1", "t-2"]
    assert [r["ext_interaction_id"] for r in data(key=LIVE_KEY).json()] == ["l-1"]
    # A company's test and live keys differ only in their prefix; another company sees only its own.
    assert [r["ext_interaction_id"] for r in data(key="sandbox-live-key-1").json()] == []
    assert [r["ext_interaction_id"] for r in data(key="sandbox-test-other-company").json()] == ["o-1"]


def test_pages_follow_the_cursor_to_an_empty_page(stella):
    for number in range(5):
        stella(ext_interaction_id=f"c-{number}")
    pages, after = [], None
    while True:
        page = data(f"?limit=2&after={after}" if after is not None else "?limit=2").json()
        pages.append([record["ext_interaction_id"] for record in page])
        if not page:
            break
        after = page[-1]["sequence_id"]
    assert pages == [["c-0", "c-1"], ["c-2", "c-3"], ["c-4"], []]
    assert [r["sequence_id"] for r in data("?after=3").json()] == [4, 5]  # after is exclusive
    assert len(data("?limit=5000").json()) == 5  # at most 1000, never an error


@pytest.mark.parametrize("query", ["?after=abc", "?limit=ten"])
def test_a_cursor_that_is_not_a_number_is_refused(stella, query):
    assert data(query).status_code == 400


def test_an_answer_comes_back_after_the_cursor_with_a_new_sequence_id(stella, settings):
    settings.SANDBOX_FEEDBACK_SHARE = 1.0
    stella(ext_interaction_id="a-1")
    stella(ext_interaction_id="a-2", do_not_send=True)
    first = data().json()
    assert [(r["sequence_id"], r["answers"]) for r in first] == [(1, {}), (2, {})]
    cursor = first[-1]["sequence_id"]
    assert data(f"?after={cursor}").json() == []  # not yet: the customer answers 20 s later

    StellaSandboxFeedback.objects.filter(respond_at__isnull=False).update(
        respond_at=timezone.now() - timedelta(seconds=1)
    )  # 20 s have passed
    [answered] = data(f"?after={cursor}").json()
    assert (answered["uuid"], answered["sequence_id"]) == (first[0]["uuid"], 3)
    assert answered["response_received_at"]
    star = answered["answers"]["agent_star_rating"]
    [option] = star["selected_options"].values()
    assert option["integer_value"] == _star_rating_for("a-1") and 1 <= option["integer_value"] <= 5
    assert star["comment"] and star["question_id"]
    assert data(f"?after={answered['sequence_id']}").json() == []  # answered once, re-sequenced once
    assert [r["sequence_id"] for r in data().json()] == [2, 3]


def test_which_customers_answer_and_how_is_fixed_by_the_conversation():
    ids = [str(number) for number in range(2000)]
    assert [_feedback_hash(i, "answers") for i in ids[:5]] == [_feedback_hash(i, "answers") for i in ids[:5]]
    answering = sum(_feedback_hash(i, "answers") < 0.6 for i in ids) / len(ids)
    assert 0.55 < answering < 0.65
    stars = [_star_rating_for(i) for i in ids]
    assert sum(s >= 4 for s in stars) / len(stars) > 0.7 and sum(s <= 2 for s in stars) > 50


def test_stella_faults_can_be_asked_for_by_key(stella):
    limited = data(key="sandbox-test-ratelimited-1")
    assert (limited.status_code, limited["Retry-After"]) == (429, "7")
    assert data(key="sandbox-live-unavailable-1").status_code == 503


def test_employees_are_listed_a_page_at_a_time(stella):
    StellaSandboxEmployee.objects.create(custom_id="emp-9", active=False)
    StellaSandboxEmployee.objects.create(email="sam@support.example")
    headers = {"x-api-key": TEST_KEY, "Authorization": token()}
    first = Client().get("/sandbox/stella/v2/employees?number_of_employees=2", headers=headers).json()
    assert [e["custom_employee_id"] for e in first["employees"]] == ["emp-1", "emp-9"]
    assert [e["status"] for e in first["employees"]] == ["active", "deactivated"]
    assert first["employees"][0]["first_name"] == "Tess"
    next_page = first["meta"]["next_page"]
    assert next_page.startswith("http://testserver/sandbox/stella/v2/employees?external_id=")
    second = Client().get(next_page, headers=headers).json()
    assert ([e["email"] for e in second["employees"]], second["meta"]) == (["sam@support.example"], {})


# ---- Intercom notes ----


def reply(conversation_id, body, token="sandbox-token"):
    return Client().post(
        f"/sandbox/intercom/conversations/{conversation_id}/reply",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


NOTE = {"message_type": "note", "type": "admin", "admin_id": "41", "body": "<p>Ada rated Tess ★★★★★</p>"}


def test_a_note_is_kept_and_answered_with_the_conversation(db):
    IntercomRecord.objects.create(kind="conversations", intercom_id="77", data={"type": "conversation", "id": "77"})
    response = reply("77", NOTE)
    assert response.status_code == 200
    [part] = response.json()["conversation_parts"]["conversation_parts"]
    assert (response.json()["id"], part["part_type"], part["body"]) == ("77", "note", NOTE["body"])
    assert part["author"] == {"type": "admin", "id": "41"}
    note = IntercomSandboxNote.objects.get()
    assert (note.conversation_id, note.admin_id, note.body, note.status_code) == ("77", "41", NOTE["body"], 200)
    # The record route beside it still answers GETs, and only GETs.
    headers = {"Authorization": "Bearer sandbox-token"}
    assert Client().get("/sandbox/intercom/conversations/77", headers=headers).json()["id"] == "77"
    assert Client().post("/sandbox/intercom/conversations/77", headers=headers).status_code == 405
    assert Client().get("/sandbox/intercom/conversations/77/reply", headers=headers).status_code == 405


@pytest.mark.parametrize(
    ("change", "token", "status"),
    [
        ({}, "real-token", 401),
        ({"admin_id": ""}, "sandbox-token", 400),
        ({"body": " "}, "sandbox-token", 400),
        ({"type": "user"}, "sandbox-token", 400),
        ({"message_type": "assignment"}, "sandbox-token", 400),
    ],
)
def test_a_note_intercom_would_refuse_is_refused_and_not_kept(db, change, token, status):
    assert reply("77", {**NOTE, **change}, token=token).status_code == status
    assert not IntercomSandboxNote.objects.exists()


def test_a_ratelimited_conversation_refuses_its_first_note_then_takes_the_next(db):
    before = int(time.time())
    refused = reply("ratelimited-5", NOTE)
    assert refused.status_code == 429
    assert before + 1 <= int(refused["X-RateLimit-Reset"]) <= int(time.time()) + 1
    assert reply("ratelimited-5", NOTE).status_code == 200
    assert list(IntercomSandboxNote.objects.order_by("id").values_list("status_code", flat=True)) == [429, 200]


def test_the_admin_shows_feedback_and_notes(stella, admin_client):
    stella()
    reply("77", NOTE)
    feedback, note = StellaSandboxFeedback.objects.get(), IntercomSandboxNote.objects.get()
    for url in (
        "/admin/sandbox/stellasandboxfeedback/",
        f"/admin/sandbox/stellasandboxfeedback/{feedback.pk}/change/",
        "/admin/sandbox/intercomsandboxnote/",
        f"/admin/sandbox/intercomsandboxnote/{note.pk}/change/",
        "/admin/sandbox/stellasandboxemployee/",
    ):
        assert admin_client.get(url).status_code == 200, url
