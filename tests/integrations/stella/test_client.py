"""The Stella client on its own: what each answer, or the lack of one, comes to."""

import pytest
import responses

from integrations.stella.client import CallOutcome, FeedbackRequest, StellaClient


def test_long_responses_are_capped():
    client = StellaClient(base_url="https://stella.test")
    with responses.RequestsMock() as stella:
        stella.post("https://stella.test/v1/requests", status=500, body="x" * 100_000)
        result = client.create_request({}, api_key="k" * 12)
    assert len(result.response_text) == 4000


def test_connection_refused_never_reached_stella(refused_url):
    client = StellaClient(base_url=refused_url)
    assert client.create_request({}, api_key="k" * 12).outcome == CallOutcome.RETRY


@pytest.mark.parametrize(
    ("base_url", "key"),
    [("https://stella.test", "key with\nnewline-1234"), ("stella.test/no-scheme", "good-key-12345")],
)
def test_a_request_that_cannot_be_made_is_failed_not_ambiguous(base_url, key):
    """A bad header or URL fails before a byte is sent: a person must fix it, but nothing may have reached Stella."""
    client = StellaClient(base_url=base_url)
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        result = client.create_request({}, api_key=key)
    assert result.outcome == CallOutcome.FAILED
    assert result.error_message.startswith("Could not make the request")
    assert "1234" not in result.error_message  # never the key


def test_feedback_request_names_the_employee_by_custom_id_when_given():
    request = FeedbackRequest(
        channel="chat",
        conversation_id="1",
        conversation_url="https://app.intercom.com/a/apps/x/conversations/1",
        customer_name="",
        customer_email="ada@customer.example",
        employee_email="tess@support.example",
    )
    assert request.as_json()["employee"] == {"email": "tess@support.example"}
    assert "do_not_send" not in request.as_json() and request.as_json()["customer"] == {"email": "ada@customer.example"}
    flagged = FeedbackRequest(**{**request.__dict__, "employee_custom_id": "emp-1", "do_not_send": True})
    assert (flagged.as_json()["employee"], flagged.as_json()["do_not_send"]) == ({"custom_id": "emp-1"}, True)
