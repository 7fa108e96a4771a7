import importlib
import json

import pytest
from django.apps import apps
from django.test import Client
from django.urls import clear_url_caches

from sandbox.models import IntercomRecord, StellaSandboxEmployee, StellaSandboxRequest

GOOD = {
    "channel": "chat",
    "employee": {"email": "tess@support.example"},
    "customer": {"name": "Ada", "email": "ada@customer.example"},
    "ext_interaction_id": "1",
}


@pytest.fixture
def stella(db):
    StellaSandboxEmployee.objects.create(email="tess@support.example")
    StellaSandboxEmployee.objects.create(custom_id="emp-9", active=False)

    def post(body, key="sandbox-test-key-1"):
        return Client().post(
            "/sandbox/stella/v1/requests",
            data=json.dumps(body),
            content_type="application/json",
            headers={"x-api-key": key},
        )

    return post


def test_sandbox_stella_accepts_and_keeps_a_good_request(stella):
    response = stella(GOOD)
    assert (response.status_code, response.json()) == (200, GOOD)
    received = StellaSandboxRequest.objects.get()
    assert (received.mode, received.api_key, received.body) == ("test", "••••ey-1", GOOD)
    assert stella(GOOD, key="sandbox-live-key-2").status_code == 200
    assert StellaSandboxRequest.objects.filter(mode="live").count() == 1


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"employee": {"email": "stranger@support.example"}}, 400, "Employee not found"),
        ({"employee": {"custom_id": "emp-9"}}, 400, "Deactivated employee"),
        ({"channel": "phone"}, 400, "Channel not enabled for company"),
        ({"customer": {"name": "Ada", "email": "ada@"}}, 400, "Invalid customer"),
        ({"surprise": True}, 400, "Validation error: unknown field surprise"),
        ({"channel": None}, 400, "Validation error: channel is required"),
    ],
)
def test_sandbox_stella_refuses_in_stellas_words(stella, change, status, message):
    response = stella({**GOOD, **change})
    assert (response.status_code, response.json()) == (status, {"message": message})


def test_sandbox_stella_refuses_a_key_it_does_not_know(stella):
    assert stella(GOOD, key="live-key-from-somewhere").status_code == 403
    assert StellaSandboxRequest.objects.get().status_code == 403


def test_sandbox_intercom_answers_with_its_records(db):
    IntercomRecord.objects.create(
        kind="admins", intercom_id="41", data={"type": "admin", "id": "41", "email": "a@b.example"}
    )
    client = Client()
    ok = client.get("/sandbox/intercom/admins/41", headers={"Authorization": "Bearer sandbox-token"})
    assert (ok.status_code, ok.json()["email"]) == (200, "a@b.example")
    assert (
        client.get("/sandbox/intercom/admins/42", headers={"Authorization": "Bearer sandbox-token"}).status_code == 404
    )
    assert client.get("/sandbox/intercom/admins/41", headers={"Authorization": "Bearer real-token"}).status_code == 401


def test_sandbox_urls_exist_only_with_the_sandbox_on(settings):
    import portal.urls

    settings.SANDBOX = False
    clear_url_caches()
    importlib.reload(portal.urls)
    try:
        assert (
            Client().post("/sandbox/stella/v1/requests", data="{}", content_type="application/json").status_code == 404
        )
    finally:
        settings.SANDBOX = True
        importlib.reload(portal.urls)
        clear_url_caches()


def test_no_sandbox_model_shares_a_name_with_a_model_of_the_product():
    """In the admin, the shell and a stack trace, a name says which one is meant: the stand-in or the real record."""
    sandbox = {model.__name__ for model in apps.get_app_config("sandbox").get_models()}
    product = {model.__name__ for model in apps.get_models() if model._meta.app_label != "sandbox"}
    assert sandbox and not sandbox & product
