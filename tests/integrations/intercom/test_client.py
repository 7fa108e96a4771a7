"""The Intercom REST client: GET /me, no call at all without a token, and ids that ask for nothing else."""

import re

import pytest
import responses

from integrations.intercom.client import (
    TOKEN_MISSING,
    IntercomAdmin,
    IntercomClient,
    IntercomContact,
    IntercomError,
    IntercomMe,
    IntercomNotFound,
    IntercomTokenMissing,
    IntercomTokenRejected,
)
from tests.servers import Answer, scripted_stella

API = "https://api.intercom.test"


@pytest.mark.parametrize("token", ["", "   "])
@responses.activate
def test_no_token_is_refused_before_any_call(token):
    with pytest.raises(IntercomTokenMissing) as refused:
        IntercomClient(token, base_url=API)
    assert str(refused.value) == TOKEN_MISSING == "No Intercom access token: connect with Intercom"
    assert not isinstance(refused.value, IntercomTokenRejected)
    # Callers that give up on a missing record give up on a missing token too.
    assert isinstance(refused.value, IntercomNotFound)
    assert len(responses.calls) == 0


@responses.activate
def test_me_says_which_workspace_the_token_is_for():
    me = responses.get(
        f"{API}/me",
        json={"type": "admin", "id": "991", "app": {"type": "app", "id_code": "abc123", "name": "Acme Support"}},
    )
    assert IntercomClient("token-123456", base_url=API).me() == IntercomMe("abc123", "Acme Support")
    assert me.calls[0].request.headers["Authorization"] == "Bearer token-123456"
    assert IntercomClient("token-123456", base_url=API).workspace_id() == "abc123"


@pytest.mark.parametrize(
    "body",
    [{}, {"app": None}, {"app": {"name": "No id"}}, {"app": {"id_code": 42}}, {"app": {"id_code": "x" * 65}}, []],
)
@responses.activate
def test_a_me_without_a_workspace_is_an_error(body):
    responses.get(f"{API}/me", json=body)
    with pytest.raises(IntercomError, match="didn't say which workspace|not a JSON object"):
        IntercomClient("token-123456", base_url=API).me()


@responses.activate
def test_a_refused_token_is_rejected():
    responses.get(f"{API}/me", status=401, json={"type": "error.list", "errors": [{"code": "unauthorized"}]})
    with pytest.raises(IntercomTokenRejected, match="Intercom access token rejected"):
        IntercomClient("expired-token", base_url=API).me()


ASKS = {
    "conversation": (lambda client, id_: client.conversation(id_, url="https://app.intercom.com/x"), "/conversations/"),
    "contact": (lambda client, id_: client.contact(id_), "/contacts/"),
    "teammate": (lambda client, id_: client.admin(id_), "/admins/"),
    "note": (lambda client, id_: client.conversation_note_add(id_, admin_id="41", body="<p>Hi</p>"), "/conversations/"),
}
REPLY = {"note": "/reply"}


@pytest.mark.parametrize("ask", ASKS)
@pytest.mark.parametrize(
    ("id_", "segment"),
    [
        ("../../me", "..%2F..%2Fme"),
        ("x?admin=1#", "x%3Fadmin%3D1%23"),
        ("a/b", "a%2Fb"),
        ("%2E%2E", "%252E%252E"),
        ("..%2Fme", "..%252Fme"),
        ("ü 1", "%C3%BC%201"),
    ],
)
def test_an_id_is_quoted_whole_into_the_path_and_asks_for_nothing_else(ask, id_, segment):
    call, prefix = ASKS[ask]
    with scripted_stella(Answer(200, {"type": "conversation", "id": "1"})) as server:
        call(IntercomClient("token-123456", base_url=server.url), id_)
    assert [received.path for received in server.received] == [prefix + segment + REPLY.get(ask, "")]


@pytest.mark.parametrize("ask", ASKS)
@pytest.mark.parametrize("id_", [".", "..", ""])
def test_an_id_that_would_walk_the_path_is_not_asked_for(ask, id_):
    call, _ = ASKS[ask]
    what = "conversation" if ask == "note" else ask
    with scripted_stella(Answer(200, {"type": "conversation", "id": "1"})) as server:
        with pytest.raises(IntercomNotFound, match=f"^{re.escape(repr(id_))} is not an Intercom {what} id$"):
            call(IntercomClient("token-123456", base_url=server.url), id_)
    assert server.received == []


@responses.activate
def test_a_contact_and_a_teammate_from_intercom_keep_their_text_storable():
    responses.get(f"{API}/contacts/c1", json={"id": "c1", "role": "lead\ud800", "name": "Bea\x00", "email": "b@x.test"})
    responses.get(f"{API}/admins/7", json={"id": "7", "name": "Tess \udfff", "email": "t\x00@x.test"})
    client = IntercomClient("token-123456", base_url=API)
    assert client.contact("c1") == IntercomContact("c1", "lead\ufffd", "Bea\ufffd", "b@x.test")
    assert client.admin("7") == IntercomAdmin("7", "Tess \ufffd", "t\ufffd@x.test")


@pytest.mark.parametrize("body", [{"role": 1}, {"name": ["Bea"]}, {"email": {}}, {"id": "x" * 65}])
@responses.activate
def test_a_contact_intercom_describes_in_other_shapes_is_an_error_naming_the_field(body):
    responses.get(f"{API}/contacts/c1", json=body)
    field = next(iter(body))
    with pytest.raises(IntercomError, match=f"^Intercom's contact c1 is not readable: {field} "):
        IntercomClient("token-123456", base_url=API).contact("c1")
