"""The Intercom REST client: GET /me, and no call at all without a token."""

import pytest
import responses

from integrations.intercom.client import (
    TOKEN_MISSING,
    IntercomClient,
    IntercomError,
    IntercomMe,
    IntercomNotFound,
    IntercomTokenMissing,
    IntercomTokenRejected,
)

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
