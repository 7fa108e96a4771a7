"""Connect with Intercom: the OAuth install flow, against the sandbox playing Intercom over real HTTP."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse

from surveys.models import Account, IntegrationSettings
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def intercom(live_server, settings):
    settings.INTERCOM_API_URL = f"{live_server.url}/sandbox/intercom"
    settings.INTERCOM_OAUTH_URL = f"{live_server.url}/sandbox/intercom/oauth"
    return live_server


@pytest.fixture
def csm(client, django_user_model):
    user = django_user_model.objects.create_superuser("csm", "csm@stella.example", "pw-csm-12345")
    client.force_login(user)
    return client


def start(csm, account):
    """Click "Connect with Intercom": returns the consent page's query."""
    response = csm.get(reverse("admin:surveys_account_connect_intercom", args=[account.pk]))
    assert response.status_code == 302
    consent = urlparse(response["Location"])
    assert consent.path == "/sandbox/intercom/oauth"
    query = {key: values[0] for key, values in parse_qs(consent.query).items()}
    assert (query["client_id"], query["redirect_uri"]) == (
        "sandbox-client-id",
        "http://testserver/intercom/oauth/callback/",
    )
    return query


def consent(csm, query, *, workspace="wsoauth1", allow=True):
    """What Intercom's consent page does: back to our callback with a code, or with an error."""
    response = csm.post("/sandbox/intercom/oauth", {**query, "workspace": workspace, "allow" if allow else "deny": "1"})
    assert response.status_code == 302
    return csm.get(response["Location"])


def test_connect_with_intercom_stores_token_and_workspace(intercom, csm):
    account = AccountFactory(intercom_workspace_id="placeholder", integration__intercom_access_token="")
    response = consent(csm, start(csm, account))
    assert response.status_code == 302
    account.refresh_from_db()
    settings = IntegrationSettings.objects.get(account=account)
    assert account.intercom_workspace_id == "wsoauth1"
    assert settings.intercom_token.startswith("sandbox-")
    page = csm.get(response["Location"]).content.decode()
    assert "Connected" in page and settings.intercom_token not in page


def test_a_wrong_state_is_refused_and_stores_nothing(intercom, csm):
    account = AccountFactory(intercom_workspace_id="placeholder", integration__intercom_access_token="")
    query = start(csm, account)
    response = consent(csm, {**query, "state": "forged-state"})
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "placeholder"
    assert IntegrationSettings.objects.get(account=account).intercom_token == ""


def test_a_denied_consent_stores_nothing(intercom, csm):
    account = AccountFactory(intercom_workspace_id="placeholder", integration__intercom_access_token="")
    response = consent(csm, start(csm, account), allow=False)
    assert response.status_code == 400 and "did not authorise" in response.content.decode()
    assert IntegrationSettings.objects.get(account=account).intercom_token == ""


def test_a_refused_code_stores_nothing(intercom, csm):
    account = AccountFactory(intercom_workspace_id="placeholder", integration__intercom_access_token="")
    query = start(csm, account)
    response = csm.get(reverse("intercom_oauth_callback"), {"state": query["state"], "code": "made-up-code"})
    assert response.status_code == 400 and "refused the authorisation code" in response.content.decode()
    assert IntegrationSettings.objects.get(account=account).intercom_token == ""


def test_a_workspace_of_another_account_is_refused(intercom, csm):
    AccountFactory(intercom_workspace_id="taken1")
    account = AccountFactory(intercom_workspace_id="placeholder", integration__intercom_access_token="")
    response = consent(csm, start(csm, account), workspace="taken1")
    assert response.status_code == 400 and "already belongs to another account" in response.content.decode()
    assert IntegrationSettings.objects.get(account=account).intercom_token == ""


def test_a_state_is_good_once(intercom, csm):
    account = AccountFactory(intercom_workspace_id="placeholder", integration__intercom_access_token="")
    query = start(csm, account)
    consent(csm, query)
    assert consent(csm, query).status_code == 400
