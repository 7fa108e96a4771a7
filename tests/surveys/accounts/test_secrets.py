"""Stella keys and Intercom tokens at rest: encrypted in the database, plain only for the vendors' clients.

A secret the keys can't open pauses the account and keeps its requests; `rotate_secrets` moves every secret
to the newest key; and a known key is found nowhere: not in the database, the logs of a send, or any page.
"""

import logging
from datetime import UTC, datetime
from io import StringIO

import pytest
import responses
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from portal.crypto import secret_decrypt
from portal.logging import ContextFormatter
from surveys.accounts.account import integration_settings_update
from surveys.delivery.sending import survey_request_send, survey_requests_send_due
from surveys.models import ApiRequest, IntegrationHealth, IntegrationSettings, SurveyRequest
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import admin_urls
from tests.surveys.admin.test_accounts import account_form

S = SurveyRequest.Status
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SECRETS = ("test_api_key", "production_api_key", "intercom_access_token")


def stored(integration: IntegrationSettings) -> dict[str, str]:
    """The secret columns as the database holds them."""
    columns = ", ".join(IntegrationSettings._meta.get_field(name).column for name in SECRETS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {IntegrationSettings._meta.db_table} WHERE id = %s", [integration.pk])
        return dict(zip(SECRETS, cursor.fetchone(), strict=True))


def paused_reason(account) -> str:
    return IntegrationHealth.objects.get(account=account).sending_paused_reason


@pytest.fixture
def encrypted_with_a_removed_key(settings, account):
    """The account's secrets were encrypted with a key that is no longer in FIELD_ENCRYPTION_KEYS."""
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    account.integration.save()
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    return account


# ---- A secret that can't be decrypted ----


@pytest.mark.django_db
def test_an_undecryptable_stella_key_pauses_sending_and_keeps_the_request(encrypted_with_a_removed_key):
    account = encrypted_with_a_removed_key
    survey_request = SurveyRequestFactory(account=account, send_after=NOW, queued_at=NOW)
    with responses.RequestsMock():  # any call out would fail the test
        assert survey_request_send(survey_request.pk, now=NOW).status == S.SCHEDULED
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.queued_at, survey_request.attempts) == (S.SCHEDULED, None, 0)
    assert not ApiRequest.objects.exists()
    assert paused_reason(account) == (
        "The test API key can't be decrypted with FIELD_ENCRYPTION_KEYS (was its key removed?)"
    )
    assert survey_requests_send_due(now=NOW) == 0  # paused: the sweep leaves it


@pytest.mark.django_db
@responses.activate
def test_entering_the_keys_again_resumes_and_the_kept_request_is_sent(encrypted_with_a_removed_key, settings):
    account = encrypted_with_a_removed_key
    survey_request = SurveyRequestFactory(account=account, send_after=NOW)
    survey_request_send(survey_request.pk, now=NOW)
    integration = IntegrationSettings.objects.get(account=account)
    integration_settings_update(integration, test_api_key="test-key-entered-again-0001")
    assert paused_reason(account) == ""
    assert survey_requests_send_due(now=NOW) == 1
    stella = responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={})
    assert survey_request_send(survey_request.pk, now=NOW).status == S.SENT
    assert stella.calls[0].request.headers["x-api-key"] == "test-key-entered-again-0001"


@pytest.mark.django_db
def test_an_undecryptable_intercom_token_pauses_during_the_look_up_and_unclaims_the_request(
    encrypted_with_a_removed_key,
):
    account = encrypted_with_a_removed_key
    survey_request = SurveyRequestFactory(account=account, send_after=NOW, customer_email="", customer_id="c-1")
    with responses.RequestsMock():
        result = survey_request_send(survey_request.pk, now=NOW)
    survey_request.refresh_from_db()
    assert (survey_request.status, survey_request.claimed_at, survey_request.queued_at) == (S.SCHEDULED, None, None)
    assert result.status == S.SCHEDULED
    assert paused_reason(account).startswith("The Intercom access token can't be decrypted")
    assert "Intercom access token can't be decrypted" in survey_request.status_detail


@pytest.mark.django_db
def test_an_intercom_token_entered_again_lifts_its_pause_once_every_secret_decrypts(encrypted_with_a_removed_key):
    account = encrypted_with_a_removed_key
    survey_request_send(
        SurveyRequestFactory(account=account, send_after=NOW, customer_email="", customer_id="c-1").pk, now=NOW
    )
    integration = IntegrationSettings.objects.get(account=account)
    integration_settings_update(integration, intercom_access_token="intercom-token-again-0001")
    assert paused_reason(account) != ""  # the Stella keys are still unreadable
    integration_settings_update(integration, test_api_key="t-again-0001", production_api_key="p-again-0001")
    assert paused_reason(account) == ""


# ---- Rotation ----


@pytest.mark.django_db
def test_rotate_secrets_moves_every_secret_to_the_newest_key_once(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    accounts = [AccountFactory(), AccountFactory(integration__production_api_key="")]
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    out = StringIO()
    call_command("rotate_secrets", stdout=out)
    assert out.getvalue().strip() == "Rotated 5 secrets to the newest key; 0 already used it."
    out = StringIO()
    call_command("rotate_secrets", stdout=out)
    assert out.getvalue().strip() == "Rotated 0 secrets to the newest key; 5 already used it."
    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # the old key can go now
    first = IntegrationSettings.objects.get(account=accounts[0])
    assert (first.api_key_for("test"), first.api_key_for("live"), first.intercom_token) == (
        "test-key-0000-1111-2222-abcd",
        "live-key-9999-8888-7777-wxyz",
        "intercom-token-5555-6666-tokn",
    )
    assert stored(accounts[1].integration)["production_api_key"] == ""


@pytest.mark.django_db
def test_rotate_secrets_names_what_it_cant_decrypt_and_resumes_once_the_key_is_back(encrypted_with_a_removed_key):
    account = encrypted_with_a_removed_key
    survey_request_send(SurveyRequestFactory(account=account, send_after=NOW).pk, now=NOW)
    with pytest.raises(CommandError, match="3 secrets can't be decrypted") as refused:
        call_command("rotate_secrets", stdout=StringIO())
    assert f"surveys.IntegrationSettings {account.integration.pk} test_api_key" in str(refused.value)
    assert paused_reason(account) != ""
    from django.conf import settings

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # put back
    out = StringIO()
    call_command("rotate_secrets", stdout=out)
    assert "Rotated 3 secrets" in out.getvalue() and "Resumed sending for 1 accounts" in out.getvalue()
    assert paused_reason(account) == ""
    assert all(secret_decrypt(value) for value in stored(account.integration).values())


# ---- The migration ----


def migrate(*targets: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())
    return executor.loader.project_state(list(targets) or None).apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_the_keys_already_stored_and_back():
    old_apps = migrate(("surveys", "0011_personal_data_erased_at"))
    try:
        account = old_apps.get_model("surveys", "Account").objects.create(name="Old", intercom_workspace_id="old1")
        old_apps.get_model("surveys", "IntegrationSettings").objects.create(
            account=account, test_api_key="plain-test-key-0001", production_api_key="", intercom_access_token="tok-1"
        )
    finally:
        migrate()
    integration = IntegrationSettings.objects.get(account_id=account.pk)
    columns = stored(integration)
    assert "plain-test-key-0001" not in columns["test_api_key"] and columns["production_api_key"] == ""
    assert (integration.api_key_for("test"), integration.intercom_token) == ("plain-test-key-0001", "tok-1")
    migrate(("surveys", "0011_personal_data_erased_at"))
    try:
        assert stored(integration) == {
            "test_api_key": "plain-test-key-0001",
            "production_api_key": "",
            "intercom_access_token": "tok-1",
        }
    finally:
        migrate()


# ---- A known key, nowhere ----

PROBES = {
    "test_api_key": "stella-test-PROBE-5b8e1f0c27",
    "production_api_key": "stella-live-PROBE-93a4d6e2b1",
    "intercom_access_token": "intercom-PROBE-token-c4f70a9e",
}


def database_text() -> list[tuple[str, bytes]]:
    """Every value of every row of every table, as bytes."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                    rows.append((table, raw))
    return rows


def every_page(client, account) -> dict[str, bytes]:
    """Every admin page (each model admin's own and custom views, on this account's objects), the status
    page and its export, and the API."""
    objects = {
        type(account): account,
        IntegrationSettings: account.integration,
        SurveyRequest: SurveyRequest.objects.filter(account=account).first(),
        ApiRequest: ApiRequest.objects.filter(account=account).first(),
    }
    urls = [*admin_urls(objects), "/status/", "/status/export.csv", "/api/survey-requests/", "/api/api-requests/"]
    pages = {}
    for url in urls:
        response = client.get(url)
        pages[url] = b"".join(response.streaming_content) if response.streaming else response.content
    return pages


@pytest.mark.django_db
@responses.activate
def test_a_known_key_is_in_no_table_no_log_of_a_send_and_no_page(admin_client, account, settings, caplog):
    settings.INTERCOM_API_URL = "https://api.intercom.test"
    caplog.set_level(logging.DEBUG)
    # A CSM enters the keys in the admin.
    form = account_form(account, **{f"integration-0-{name}": value for name, value in PROBES.items()})
    assert admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), form).status_code == 302
    # A real send: a look-up in Intercom with the token, then the call to Stella with the key.
    intercom = responses.get(
        "https://api.intercom.test/contacts/c-probe",
        json={"type": "contact", "id": "c-probe", "role": "user", "email": "probe@customer.example"},
    )
    stella = responses.post(f"{settings.STELLA_API_URL}/v1/requests", json={})
    survey_request = SurveyRequestFactory(account=account, send_after=NOW, customer_email="", customer_id="c-probe")
    assert survey_request_send(survey_request.pk, now=NOW).status == S.SENT
    # The vendors got the plaintext, never the ciphertext.
    assert intercom.calls[0].request.headers["Authorization"] == f"Bearer {PROBES['intercom_access_token']}"
    assert stella.calls[0].request.headers["x-api-key"] == PROBES["test_api_key"]
    SurveyRequestFactory(account=account, status=S.INVALID)  # a second row for the lists

    rows = database_text()
    logged_call = [raw for table, raw in rows if table == ApiRequest._meta.db_table and b"x-api-key" in raw]
    assert len(logged_call) == 1 and PROBES["test_api_key"][-4:].encode() in logged_call[0]  # masked: ••••0c27
    assert [(table, name) for table, raw in rows for name, probe in PROBES.items() if probe.encode() in raw] == []
    formatter = ContextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    log = "\n".join(formatter.format(record) for record in caplog.records)
    assert "stella.request.sent" in log
    assert [name for name, probe in PROBES.items() if probe in log] == []
    pages = every_page(admin_client, account)
    assert len(pages) > 40
    assert reverse("admin:surveys_account_go_live", args=[account.pk]) in pages
    assert [
        (url, name) for url, body in pages.items() for name, probe in PROBES.items() if probe.encode() in body
    ] == []
    change_page = pages[reverse("admin:surveys_account_change", args=[account.pk])].decode()
    assert "stored: ••••27" not in change_page and "stored: ••••5b8e" not in change_page
    assert "stored: ••••0c27" in change_page and "stored: ••••0a9e" in change_page  # masking still works
