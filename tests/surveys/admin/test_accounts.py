from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from surveys.models import Account, IntegrationSettings, StellaEmployee, SurveyRequest, Teammate
from tests.factories import SurveyRequestFactory
from tests.helpers import load_fixture, post_webhook

pytestmark = pytest.mark.django_db

TEST_KEY = "test-key-0000-1111-2222-abcd"
LIVE_KEY = "live-key-9999-8888-7777-wxyz"
TOKEN = "intercom-token-5555-6666-tokn"


def account_form(account: Account | None = None, **overrides) -> dict:
    data = {
        "name": account.name if account else "Acme",
        "intercom_workspace_id": account.intercom_workspace_id if account else "acme01",
        "integration-TOTAL_FORMS": "1",
        "integration-INITIAL_FORMS": "1" if account else "0",
        "integration-MIN_NUM_FORMS": "1",
        "integration-MAX_NUM_FORMS": "1",
        "integration-0-enabled": "on",
        "integration-0-mode": "test",
        "integration-0-email_enabled": "on",
        "integration-0-chat_enabled": "on",
        "integration-0-channel_delay": "0",
        "integration-0-suppression_window": "0",
        "integration-0-do_not_send_tags": "fraud, dupe, do_not_send_stella",
        "integration-0-test_api_key": "",
        "integration-0-production_api_key": "",
        "integration-0-intercom_access_token": "",
        "integration-0-brand": "",
        "integration-0-language": "",
    }
    if account:
        data["integration-0-id"] = str(account.integration.pk)
        data["integration-0-account"] = str(account.pk)
    data.update(overrides)
    return data


def test_csm_adds_an_account_and_gets_default_settings(admin_client):
    response = admin_client.post(reverse("admin:surveys_account_add"), account_form())
    assert response.status_code == 302, response.content
    settings = Account.objects.get(intercom_workspace_id="acme01").integration
    assert settings.enabled and settings.mode == "test"
    assert settings.enabled_channels == {"email", "chat"}
    assert settings.channel_delay == timedelta(0)
    assert settings.do_not_send_tag_names == {"fraud", "dupe", "do_not_send_stella"}


def test_keys_never_appear_in_full_on_account_pages(admin_client, account):
    for url in (
        reverse("admin:surveys_account_changelist"),
        reverse("admin:surveys_account_change", args=[account.pk]),
    ):
        page = admin_client.get(url).content.decode()
        for secret in (TEST_KEY, LIVE_KEY, TOKEN):
            assert secret not in page
            assert secret[:-4] not in page
    change_page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk])).content.decode()
    assert "stored: ••••abcd" in change_page
    assert "stored: ••••wxyz" in change_page


def test_saving_with_empty_key_fields_keeps_the_stored_keys(admin_client, account):
    form = account_form(
        account,
        **{
            "integration-0-channel_delay": "10m",
            "integration-0-suppression_window": "7d",
            "integration-0-mode": "live",
        },
    )
    response = admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), form)
    assert response.status_code == 302, response.content
    settings = IntegrationSettings.objects.get(account=account)
    assert (settings.test_api_key, settings.production_api_key, settings.intercom_token) == (TEST_KEY, LIVE_KEY, TOKEN)
    assert (settings.channel_delay, settings.suppression_window) == (timedelta(minutes=10), timedelta(days=7))
    assert settings.api_key_for(settings.mode) == LIVE_KEY


def test_typing_a_new_key_replaces_it(admin_client, account):
    form = account_form(account, **{"integration-0-production_api_key": "brand-new-production-key-1234"})
    admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), form)
    assert IntegrationSettings.objects.get(account=account).api_key_for("live") == "brand-new-production-key-1234"


def test_a_duration_csms_can_read_is_required(admin_client, account):
    form = account_form(account, **{"integration-0-channel_delay": "ten minutes"})
    response = admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), form)
    assert response.status_code == 200
    assert "is not a duration; write e.g. 30m, 2h, 7d or 1h30m" in response.content.decode()


def test_survey_requests_list_filters_and_searches(admin_client, account):
    findme = SurveyRequestFactory(
        account=account,
        customer_email="findme@customer.example",
        status=SurveyRequest.Status.INVALID,
        reason="invalid_customer",
    )
    SurveyRequestFactory(account=account, customer_email="other@customer.example")
    url = reverse("admin:surveys_surveyrequest_changelist")

    def listed(params):
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return [row.pk for row in response.context["cl"].result_list]

    assert listed({"q": "findme@customer.example"}) == [findme.pk]
    filters = {
        "outcome": "invalid",
        "reason__exact": "invalid_customer",
        "channel__exact": "chat",
        "mode__exact": "test",
        "account__id__exact": account.pk,
    }
    assert listed(filters) == [findme.pk]


def test_webhook_and_its_survey_request_show_in_the_admin(admin_client, account):
    post_webhook(admin_client, load_fixture("conversation_admin_closed_bot_v2"))
    survey_request = SurveyRequest.objects.get()
    page = admin_client.get(reverse("admin:surveys_surveyrequest_change", args=[survey_request.pk])).content.decode()
    assert "Assigned to a bot" in page
    assert "Send, flagged do not send" in page
    assert "215000000000401" in page
    webhook_page = admin_client.get(
        reverse("admin:integrations_inboundwebhook_change", args=[survey_request.inbound_webhook_id])
    ).content.decode()
    assert "conversation.admin.closed" in webhook_page
    assert "operator+ws1test@intercom.io" in webhook_page  # the raw body


# The screens CSMs work in: dropping one from the admin must fail a test.
CSM_SCREENS = {
    "surveys_account", "surveys_teammate", "integrations_inboundwebhook", "surveys_conversationevent",
    "surveys_surveyrequest", "surveys_apirequest", "surveys_testapirequest", "surveys_invalidapirequest",
    "sandbox_stellasandboxrequest", "portal_apitoken",
}  # fmt: skip


def test_the_admin_has_every_screen_csms_use():
    registered = {f"{model._meta.app_label}_{model._meta.model_name}" for model in admin.site._registry}
    assert CSM_SCREENS <= registered, CSM_SCREENS - registered


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda model: model._meta.label)
def test_every_admin_list_opens(admin_client, account, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert admin_client.get(url).status_code == 200


def test_logs_are_read_only(admin_client, account):
    post_webhook(admin_client, load_fixture("conversation_admin_closed"))
    survey_request = SurveyRequest.objects.get()
    assert admin_client.get(reverse("admin:surveys_surveyrequest_add")).status_code == 403
    assert (
        admin_client.get(
            reverse("admin:integrations_inboundwebhook_delete", args=[survey_request.inbound_webhook_id])
        ).status_code
        == 403
    )


def test_csm_maps_a_teammate_to_a_stella_employee_from_the_list(admin_client, account):
    from surveys.models import Teammate

    teammate = Teammate.objects.create(
        account=account, intercom_id="4100777", name="Nora New", email="nora@support.example"
    )
    response = admin_client.post(
        reverse("admin:surveys_teammate_changelist"),
        {
            "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-MIN_NUM_FORMS": "0", "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(teammate.pk), "form-0-stella_custom_id": "EMP-0042", "_save": "Save",
        },
    )  # fmt: skip
    assert response.status_code == 302
    teammate.refresh_from_db()
    assert teammate.stella_custom_id == "EMP-0042"


def test_api_tokens_are_shown_in_full_once_when_made_then_masked(admin_client, django_user_model):
    from django.contrib.admin.models import LogEntry

    from portal.models import ApiToken

    support = django_user_model.objects.create_user("helpdesk")
    made = admin_client.post(reverse("admin:portal_apitoken_add"), {"user": support.pk}, follow=True)
    key = made.content.decode().split("The API token for helpdesk is ", 1)[1][:40]  # only its hash is stored
    assert ApiToken.objects.get(user=support, key=key)  # the one time: the "copy it now" message
    token = ApiToken.objects.get(user=support)
    for url in (
        reverse("admin:portal_apitoken_changelist"),
        reverse("admin:portal_apitoken_change", args=[token.pk]),
        reverse("admin:index"),
    ):
        page = admin_client.get(url).content.decode()
        assert key not in page and key[:-4] not in page, url
        assert key[-4:] in page
    assert key not in LogEntry.objects.get().object_repr


def test_bookmarks_to_the_accounts_old_admin_address_still_arrive(admin_client, account):
    response = admin_client.get(f"/admin/integrations/account/{account.pk}/change/?x=1")
    assert (response.status_code, response["Location"]) == (301, f"/admin/surveys/account/{account.pk}/change/?x=1")
    assert admin_client.get(response["Location"]).status_code == 200


def test_giving_a_teammate_their_stella_custom_id_checks_them_against_stellas_employees_at_once(admin_client, account):
    """No wait for the next hourly sync: the teammates Stella won't recognise list is right as soon as it's saved."""
    StellaEmployee.objects.create(account=account, stella_id="7", custom_id="emp-7", synced_at=timezone.now())
    teammate = Teammate.objects.create(
        account=account, intercom_id="4100004", name="Nia", email="nia@support.example", stella_match="unmatched"
    )
    url = reverse("admin:surveys_teammate_change", args=[teammate.pk])
    form = {"account": account.pk, "intercom_id": "4100004", "name": "Nia", "email": "nia@support.example"}
    response = admin_client.post(url, {**form, "stella_custom_id": "emp-7"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Teammate.objects.get(pk=teammate.pk).stella_match == Teammate.StellaMatch.CUSTOM_ID
    admin_client.post(url, {**form, "stella_custom_id": "emp-8"})  # a typo: Stella knows no emp-8
    assert Teammate.objects.get(pk=teammate.pk).stella_match == Teammate.StellaMatch.UNMATCHED


def test_a_secret_typed_into_a_form_sent_back_with_an_error_is_kept_for_the_corrected_save(admin_client, account):
    url = reverse("admin:surveys_account_change", args=[account.pk])
    secret = "stella-secret-typed-0000-k3pt"
    wrong = account_form(account, **{"integration-0-reconcile_after": "10m", "integration-0-stella_api_secret": secret})
    response = admin_client.post(url, wrong)
    assert response.status_code == 200  # sent back: 10 minutes is below the bound
    page = response.content.decode()
    assert "At least 1h." in page
    assert "typed: ••••k3pt, kept until you save" in page
    assert secret not in page and secret not in str(admin_client.session.items())  # encrypted, never in the page

    response = admin_client.post(url, account_form(account, **{"integration-0-reconcile_after": "2h"}))
    assert response.status_code == 302
    integration = IntegrationSettings.objects.get(account=account)
    assert (integration.stella_secret, integration.reconcile_after) == (secret, timedelta(hours=2))


def test_every_duration_hint_states_its_bounds(admin_client, account):
    page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk])).content.decode()
    assert "from 0 to 7d, e.g. 10m." in page  # channel delay
    assert "from 0 to 365d, e.g. 7d." in page  # suppression window
    assert "from 1h to 30d, e.g. 24h." in page  # reconcile after
    response = admin_client.post(
        reverse("admin:surveys_account_change", args=[account.pk]),
        account_form(account, **{"integration-0-channel_delay": "8d", "integration-0-suppression_window": "0"}),
    )
    assert "At most 7d." in response.content.decode()
