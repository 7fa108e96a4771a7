"""Region: an EU workspace is called at the EU host, a US one at the US host, over real HTTP to two loopback
stand-ins. Connecting takes the region Intercom names (the token's answer, then /me); REST look-ups, Check now and
notes then follow the account's region; INTERCOM_API_URL stays the US host and every region's fallback."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from integrations.intercom.client import intercom_api_url, intercom_region_of, intercom_token_for_code
from integrations.vocabulary import IntercomRegion
from portal.history import Source
from surveys.accounts.account import account_intercom_region_observe, integration_settings_update
from surveys.accounts.onboarding import account_intercom_check
from surveys.delivery.sending import survey_request_look_up
from surveys.loop.notes import intercom_notes_write_all
from surveys.models import Account, IntegrationSettings, SurveyRequest
from tests.factories import AccountFactory, SurveyRequestFactory
from tests.helpers import WORKSPACE_ID
from tests.servers import Answer, scripted_stella

pytestmark = pytest.mark.django_db

TOKEN = "eu-token-0123456789-abcd"


def me(workspace: str, region: str | None) -> dict:
    app = {"type": "app", "id_code": workspace, "name": "Acme Europe", **({"region": region} if region else {})}
    return {"type": "admin", "app": app}


@pytest.fixture
def hosts(settings):
    """Two stand-ins on 127.0.0.1: the US host answers the token exchange naming the EU region; the EU host answers
    /me (EU), a contact, and a note."""
    us_answers = [Answer(200, {"token_type": "Bearer", "access_token": TOKEN, "workspace_region": "EU"})]
    eu_answers = [
        Answer(200, me(WORKSPACE_ID, "EU")),
        Answer(200, {"type": "contact", "id": "c-eu", "role": "user", "email": "Ana@Customer.example"}),
        Answer(200, me(WORKSPACE_ID, "EU")),
        Answer(200, {"type": "conversation"}),
    ]
    with scripted_stella(*us_answers) as us, scripted_stella(*eu_answers) as eu:
        settings.INTERCOM_API_URL = "http://127.0.0.1:9/not-used"
        settings.INTERCOM_API_URL_US, settings.INTERCOM_API_URL_EU = us.url, eu.url
        yield us, eu


def test_each_region_has_its_host_and_intercom_api_url_stays_the_us_default(settings):
    settings.INTERCOM_API_URL = "https://intercom.proxy.example/"
    settings.INTERCOM_API_URL_US = settings.INTERCOM_API_URL_EU = ""
    settings.INTERCOM_API_URL_AU = "https://api.au.intercom.io"
    assert intercom_api_url(IntercomRegion.US) == intercom_api_url() == "https://intercom.proxy.example"
    assert intercom_api_url("eu") == "https://intercom.proxy.example"  # unset: the fallback, as in the sandbox
    assert intercom_api_url("au") == "https://api.au.intercom.io"


@pytest.mark.parametrize(
    ("said", "region"),
    [("US", "us"), ("eu", "eu"), (" AU ", "au"), ("Europe", "eu"), ("mars", None), ("", None), (None, None), (3, None)],
)
def test_the_region_intercom_names_is_read_and_none_is_guessed(said, region):
    assert intercom_region_of(said) == region


def test_connecting_an_eu_workspace_follows_its_region_then_rest_and_notes_go_there(admin_client, account, hosts):
    us, eu = hosts
    assert account.integration.intercom_region == IntercomRegion.US
    started = admin_client.get(reverse("admin:surveys_account_connect_intercom", args=[account.pk]))
    state = parse_qs(urlsplit(started.url).query)["state"][0]
    back = admin_client.get(reverse("intercom_oauth_callback"), {"code": "code-1=", "state": state})
    assert back.status_code == 302, back.content

    integration = IntegrationSettings.objects.get(account=account)
    assert (integration.intercom_region, integration.intercom_token) == (IntercomRegion.EU, TOKEN)
    assert [r.path for r in us.received] == ["/auth/eagle/token"]  # the account was US until Intercom said
    assert [r.path for r in eu.received] == ["/me"]
    record = IntegrationSettings.history.filter(id=integration.pk).first()
    assert (record.intercom_region, record.history_source) == ("eu", Source.CONNECT)

    # REST: a customer looked up at the EU host.
    survey_request = SurveyRequestFactory(account=account, customer_id="c-eu", customer_email="")
    survey_request_look_up(survey_request, integration=integration, now=timezone.now())
    assert survey_request.customer_email == "ana@customer.example"
    # Check now, then a note.
    account = Account.objects.get(pk=account.pk)
    assert account_intercom_check(account, now=timezone.now()).ok
    integration_settings_update(integration, intercom_notes_enabled=True, intercom_note_author_id="4100099")
    noted = SurveyRequestFactory(account=account, status=SurveyRequest.Status.SENT)
    SurveyRequest.objects.filter(pk=noted.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    intercom_notes_write_all(now=timezone.now())
    assert [r.path for r in eu.received] == [
        "/me",
        "/contacts/c-eu",
        "/me",
        f"/conversations/{noted.conversation_id}/reply",
    ]
    assert eu.received[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert [r.path for r in us.received] == ["/auth/eagle/token"]  # nothing more went to the US host


def test_a_us_account_stays_at_the_us_host(account, hosts):
    us, eu = hosts
    us.answers = [Answer(200, {"type": "contact", "id": "c-us", "role": "user", "email": "bo@customer.example"})]
    integration = account.integration
    survey_request = SurveyRequestFactory(account=account, customer_id="c-us", customer_email="")
    survey_request_look_up(survey_request, integration=integration, now=timezone.now())
    assert survey_request.customer_email == "bo@customer.example"
    assert [r.path for r in us.received] == ["/contacts/c-us"] and eu.received == []


def test_the_token_exchange_goes_to_the_host_it_is_given(hosts):
    us, eu = hosts
    grant = intercom_token_for_code("code-2", base_url=us.url)
    assert (grant.token, grant.region) == (TOKEN, IntercomRegion.EU)


def test_a_region_intercom_tells_is_recorded_as_told_by_intercom_and_only_when_new():
    account = AccountFactory()
    assert account_intercom_region_observe(account, IntercomRegion.AU)
    assert not account_intercom_region_observe(account, IntercomRegion.AU)
    assert not account_intercom_region_observe(account, None)
    record = IntegrationSettings.history.filter(id=account.integration.pk).first()
    assert (record.intercom_region, record.history_source) == ("au", Source.INTERCOM)


def test_account_upsert_sets_the_region():
    call_command("account_upsert", "wseu1", "--intercom-region", "eu", stdout=open("/dev/null", "w"))
    assert IntegrationSettings.objects.get(account__intercom_workspace_id="wseu1").intercom_region == "eu"
    with pytest.raises(CommandError, match="invalid choice: 'mars'"):
        call_command("account_upsert", "wseu1", "--intercom-region", "mars")
