"""Connect with Intercom: the OAuth install flow, against the sandbox playing Intercom over real HTTP."""

import json
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.crypto import secret_decrypt
from surveys.accounts import oauth
from surveys.accounts.account import WorkspaceChangeUnconfirmed, account_connect_intercom
from surveys.accounts.oauth import PENDING_KEY
from surveys.models import Account, IntegrationHealth, IntegrationSettings
from tests.factories import AccountFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]  # Intercom is the live server
TOKEN = "intercom-token-5555-6666-tokn"  # the factory's


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
    # An account without a workspace id yet connects without being asked.
    account = AccountFactory(intercom_workspace_id="", integration__intercom_access_token="")
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


# ---- A workspace other than the account's own: asked first ----


def test_reconnecting_to_the_accounts_own_workspace_asks_nothing(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsown1")
    response = consent(csm, start(csm, account), workspace="wsown1")
    assert response.status_code == 302 and response["Location"].endswith(f"/surveys/account/{account.pk}/change/")
    settings = IntegrationSettings.objects.get(account=account)
    assert settings.intercom_token.startswith("sandbox-")
    health = IntegrationHealth.objects.get(account=account)
    assert (health.intercom_token_workspace_id, health.intercom_token_checked_at is not None) == ("wsown1", True)


def test_another_workspace_shows_both_ids_and_changes_nothing_until_confirmed(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold1")
    response = consent(csm, start(csm, account), workspace="wsnew1")
    assert response.status_code == 200
    page = response.content.decode()
    assert "wsold1" in page and "wsnew1" in page and "Yes, switch to workspace wsnew1" in page
    assert 'action="/intercom/oauth/callback/"' in page and 'method="post"' in page
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsold1"
    assert IntegrationSettings.objects.get(account=account).intercom_token == TOKEN  # the old token, kept
    # The new token waits in the session, encrypted: never in the page, the URL or the session in clear.
    pending = csm.session[PENDING_KEY]
    token = secret_decrypt(pending["token"])
    assert token.startswith("sandbox-")
    assert token not in page and token not in json.dumps(dict(csm.session))
    assert "sandbox-" not in page


def test_confirming_switches_the_account_to_the_new_workspace(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold2")
    consent(csm, start(csm, account), workspace="wsnew2")
    response = csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"})
    assert response.status_code == 302 and response["Location"].endswith(f"/surveys/account/{account.pk}/change/")
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsnew2"
    assert IntegrationSettings.objects.get(account=account).intercom_token.startswith("sandbox-")
    assert IntegrationHealth.objects.get(account=account).intercom_token_workspace_id == "wsnew2"
    page = csm.get(response["Location"]).content.decode()
    assert "Connected" in page and "it was connected to workspace wsold2" in page
    assert PENDING_KEY not in csm.session


def test_declining_keeps_the_workspace_and_drops_the_waiting_token(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold3")
    consent(csm, start(csm, account), workspace="wsnew3")
    response = csm.post(reverse("intercom_oauth_callback"), {"cancel": "1"})
    assert response.status_code == 302
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsold3"
    assert IntegrationSettings.objects.get(account=account).intercom_token == TOKEN
    assert PENDING_KEY not in csm.session
    # Nothing is left to confirm later.
    late = csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"})
    assert late.status_code == 400 and "expired or was used already" in late.content.decode()
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsold3"


def test_a_confirmation_is_good_once(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold4")
    consent(csm, start(csm, account), workspace="wsnew4")
    assert csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"}).status_code == 302
    assert csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"}).status_code == 400


def test_an_expired_confirmation_changes_nothing(intercom, csm, monkeypatch):
    monkeypatch.setattr(oauth, "PENDING_SECONDS", -1)
    account = AccountFactory(intercom_workspace_id="wsold5")
    consent(csm, start(csm, account), workspace="wsnew5")
    response = csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"})
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsold5"


def test_a_workspace_of_another_account_is_refused_without_asking(intercom, csm):
    AccountFactory(intercom_workspace_id="taken2")
    account = AccountFactory(intercom_workspace_id="wsold6")
    response = consent(csm, start(csm, account), workspace="taken2")
    assert response.status_code == 400 and "already belongs to another account" in response.content.decode()
    assert PENDING_KEY not in csm.session


def test_a_workspace_taken_while_the_csm_was_deciding_is_refused(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold7")
    consent(csm, start(csm, account), workspace="wsnew7")
    AccountFactory(intercom_workspace_id="wsnew7")
    response = csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"})
    assert response.status_code == 400 and "already belongs to another account" in response.content.decode()
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsold7"
    assert IntegrationSettings.objects.get(account=account).intercom_token == TOKEN


def test_the_service_refuses_another_workspace_unless_confirmed(db):
    account = AccountFactory(intercom_workspace_id="wsold8")
    with pytest.raises(WorkspaceChangeUnconfirmed):
        account_connect_intercom(account, workspace_id="wsnew8", token="sandbox-new", now=timezone.now())
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsold8"
    account_connect_intercom(account, workspace_id="wsnew8", token="sandbox-new", now=timezone.now(), confirmed=True)
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsnew8"


def test_connecting_from_the_checklist_comes_back_to_it(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold9")
    checklist = reverse("admin:surveys_account_checklist", args=[account.pk])
    response = csm.post(checklist, {"action": "connect_intercom"})
    consent_url = urlparse(response["Location"])
    assert consent_url.path == "/sandbox/intercom/oauth"
    query = {key: values[0] for key, values in parse_qs(consent_url.query).items()}
    consent(csm, query, workspace="wsnew9")  # another workspace: asked first
    response = csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"})
    assert response["Location"] == checklist


def test_a_confirmation_for_a_workspace_someone_changed_meanwhile_changes_nothing(intercom, csm):
    account = AccountFactory(intercom_workspace_id="wsold10")
    consent(csm, start(csm, account), workspace="wsnew10")
    Account.objects.filter(pk=account.pk).update(intercom_workspace_id="wsfixed10")
    response = csm.post(reverse("intercom_oauth_callback"), {"confirm": "1"})
    assert response.status_code == 400 and "changed to wsfixed10 meanwhile" in response.content.decode()
    assert Account.objects.get(pk=account.pk).intercom_workspace_id == "wsfixed10"
    assert IntegrationSettings.objects.get(account=account).intercom_token == TOKEN
