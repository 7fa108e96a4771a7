"""Notes on a conversation (POST /conversations/{id}/reply), over real HTTP: the sandbox's Intercom on the
live server, and a scripted server on 127.0.0.1 for what the sandbox doesn't answer."""

from datetime import UTC, datetime, timedelta

import pytest

from integrations.intercom.client import (
    IntercomClient,
    IntercomError,
    IntercomNotFound,
    IntercomRateLimited,
    IntercomTokenRejected,
    IntercomUnavailable,
)
from sandbox.models import IntercomSandboxNote
from tests.servers import Answer, scripted_stella

BODY = "<p>Ada rated Tess ★★★★★: <em>Quick and friendly!</em></p>"


@pytest.fixture
def intercom(live_server):
    return f"{live_server.url}/sandbox/intercom"


@pytest.mark.slow
def test_a_note_is_posted_to_the_conversation(intercom):
    IntercomClient("sandbox-token", base_url=intercom).conversation_note_add("215", admin_id="41", body=BODY)
    note = IntercomSandboxNote.objects.get()
    assert (note.conversation_id, note.admin_id, note.body, note.status_code) == ("215", "41", BODY, 200)


@pytest.mark.slow
def test_a_rejected_token_posts_nothing(intercom):
    with pytest.raises(IntercomTokenRejected):
        IntercomClient("real-token", base_url=intercom).conversation_note_add("215", admin_id="41", body=BODY)
    assert not IntercomSandboxNote.objects.exists()


@pytest.mark.slow
def test_a_rate_limit_says_when_it_resets_and_the_next_attempt_is_taken(intercom):
    client = IntercomClient("sandbox-token", base_url=intercom)
    before = datetime.now(tz=UTC).replace(microsecond=0)
    with pytest.raises(IntercomRateLimited) as limited:
        client.conversation_note_add("ratelimited-215", admin_id="41", body=BODY)
    assert before + timedelta(seconds=1) <= limited.value.reset_at <= datetime.now(tz=UTC) + timedelta(seconds=1)
    client.conversation_note_add("ratelimited-215", admin_id="41", body=BODY)
    assert list(IntercomSandboxNote.objects.order_by("id").values_list("status_code", flat=True)) == [429, 200]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (Answer(404, {"type": "error.list"}), IntercomNotFound, "Intercom has no such conversation"),
        (Answer(503, {}), IntercomUnavailable, "Intercom answered 503"),
        (Answer(400, {"type": "error.list"}), IntercomError, "Intercom answered 400 for the conversation"),
    ],
)
def test_what_intercom_answers_is_one_of_the_clients_errors(answer, error, message):
    with scripted_stella(answer) as server:
        with pytest.raises(error, match=message):
            IntercomClient("token-123456", base_url=server.url).conversation_note_add("a/b", admin_id="41", body=BODY)
    [received] = server.received
    assert received.path == "/conversations/a%2Fb/reply"  # an id can't reach another path
    assert received.body == {"message_type": "note", "type": "admin", "admin_id": "41", "body": BODY}
    assert received.headers["Authorization"] == "Bearer token-123456"
