"""Configuration on record: every change to an account, its settings and support users, from the admin, account_upsert,
Go live and Connect with Intercom, kept with who, when, through what, before and after; keys only as fingerprints;
the rules of an earlier version put back in one action, itself recorded."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from portal.history import Source
from surveys.accounts.account import account_upsert, integration_settings_update
from surveys.accounts.configuration import NotRestorable, account_configuration_history, integration_rules_restore
from surveys.admin.accounts import AccountAdmin
from surveys.admin.configuration import rule_fields
from surveys.models import Account, IntegrationSettings
from tests.factories import AccountFactory
from tests.surveys.admin.test_accounts import LIVE_KEY, TEST_KEY, TOKEN, account_form

pytestmark = pytest.mark.django_db

NEW_KEY = "sk-test-new-0123456789-QRST"
# The boxes account_form leaves out, ticked as the account has them.
SYNC_ON = {"integration-0-employee_sync_enabled": "on", "integration-0-feedback_return_enabled": "on"}


def history(account: Account) -> list:
    return account_configuration_history(account, rule_fields=rule_fields(AccountAdmin(Account, None)))


def changes_of(entry) -> dict[str, tuple[str, str]]:
    return {change.label: (change.old, change.new) for change in entry.changes}


def test_an_admin_change_is_on_record_with_who_when_through_what_before_and_after(admin_client, admin_user, account):
    form = account_form(account, **{"integration-0-channel_delay": "10m", "integration-0-mode": "live", **SYNC_ON})
    assert admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), form).status_code == 302

    latest = history(account)[0]
    assert (latest.who, latest.source) == (admin_user.username, Source.ADMIN.label)
    assert changes_of(latest) == {"Channel delay": ("0", "10m"), "Mode": ("Test", "Live")}
    record = IntegrationSettings.history.filter(id=account.integration.pk).first()
    assert record.history_user == admin_user and record.history_source == "admin"


def test_a_save_that_changes_nothing_leaves_no_record(admin_client, account):
    admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), account_form(account, **SYNC_ON))
    before = IntegrationSettings.history.count(), Account.history.count()
    admin_client.post(reverse("admin:surveys_account_change", args=[account.pk]), account_form(account, **SYNC_ON))
    integration_settings_update(account.integration)
    assert (IntegrationSettings.history.count(), Account.history.count()) == before


def test_the_first_change_to_an_account_from_before_recording_has_its_before(account):
    """Rows saved before recording began (here: a history emptied) get a baseline first, so the change has a 'before'."""
    IntegrationSettings.history.all().delete()
    integration_settings_update(account.integration, suppression_window=timedelta(days=7))
    baseline, change = history(account)[1], history(account)[0]
    assert baseline.source == Source.BASELINE.label
    assert changes_of(change)["Suppression window"] == ("0", "7d")


def test_keys_are_on_record_only_as_mask_and_fingerprint(account):
    integration_settings_update(account.integration, test_api_key=NEW_KEY)
    change = changes_of(history(account)[0])["Test API key"]
    assert change[0].startswith("••••abcd #") and change[1].startswith("••••QRST #")
    # Nowhere in the history tables, in clear or encrypted: a fingerprint opens nothing.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM surveys_historicalintegrationsettings")
        stored = repr(cursor.fetchall())
    for secret in (TEST_KEY, LIVE_KEY, TOKEN, NEW_KEY):
        assert secret not in stored and secret[:-4] not in stored
    assert "gAAAA" not in stored  # no Fernet token either


def test_two_keys_with_the_same_last_characters_read_as_different(account):
    integration_settings_update(account.integration, test_api_key="first-key-aaaaaaaa-QRST")
    integration_settings_update(account.integration, test_api_key="other-key-bbbbbbbb-QRST")
    old, new = changes_of(history(account)[0])["Test API key"]
    assert old != new and old[:8] == new[:8] == "••••QRST"


def test_support_users_added_and_removed_are_on_record(admin_user, account):
    ada = User.objects.create_user("ada.acme")
    account_upsert(workspace_id=account.intercom_workspace_id, support_users_add=[ada, admin_user])
    assert changes_of(history(account)[0])["Support users"] == ("—", "ada.acme, admin")
    account_upsert(workspace_id=account.intercom_workspace_id, support_users_remove=[ada])
    assert changes_of(history(account)[0])["Support users"] == ("ada.acme, admin", "admin")


def test_account_upsert_is_on_record_as_the_command_run_by_the_os_user(monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-deploy")
    call_command("account_upsert", "acme123", "--name", "Acme", "--channel-delay", "10m", stdout=open("/dev/null", "w"))
    account = Account.objects.get(intercom_workspace_id="acme123")
    call_command("account_upsert", "acme123", "--channel-delay", "2h", stdout=open("/dev/null", "w"))
    latest = history(account)[0]
    assert (latest.who, latest.source) == ("ops-deploy (shell)", Source.UPSERT.label)
    assert changes_of(latest) == {"Channel delay": ("10m", "2h")}
    # Run again with the same options: nothing changes, nothing is recorded.
    count = IntegrationSettings.history.count()
    call_command("account_upsert", "acme123", "--channel-delay", "2h", stdout=open("/dev/null", "w"))
    assert IntegrationSettings.history.count() == count


def test_go_live_is_on_record_as_go_live(admin_client, admin_user, account):
    admin_client.post(reverse("admin:surveys_account_go_live", args=[account.pk]))
    latest = history(account)[0]
    assert (latest.who, latest.source, changes_of(latest)) == (
        admin_user.username,
        Source.GO_LIVE.label,
        {"Mode": ("Test", "Live")},
    )


def test_an_earlier_version_of_the_rules_is_restored_in_one_action_itself_recorded(admin_client, admin_user, account):
    integration = account.integration
    integration_settings_update(integration, channel_delay=timedelta(minutes=10), do_not_send_tags="fraud")
    version = IntegrationSettings.history.filter(id=integration.pk).first()
    integration_settings_update(
        integration, channel_delay=timedelta(hours=2), do_not_send_tags="vip", test_api_key=NEW_KEY, mode="live"
    )

    page = admin_client.get(reverse("admin:surveys_account_change", args=[account.pk])).content.decode()
    url = reverse("admin:surveys_account_rules_restore", args=[account.pk, version.history_id])
    assert f'action="{url}"' in page
    response = admin_client.post(url)
    assert response.status_code == 302 and response.url.endswith("#configuration-history")

    integration.refresh_from_db()
    assert (integration.channel_delay, integration.do_not_send_tags) == (timedelta(minutes=10), "fraud")
    # Only the rules: the key and mode stay as they are.
    assert (integration.test_api_key, integration.mode) == (NEW_KEY, "live")
    latest = history(account)[0]
    assert (latest.who, latest.source) == (admin_user.username, Source.RESTORE.label)
    assert changes_of(latest) == {"Channel delay": ("2h", "10m"), "Do not send tags": ("vip", "fraud")}
    assert LogEntry.objects.filter(object_id=str(account.pk), change_message__startswith="Restored the rules").exists()
    # Restoring it again changes nothing and records nothing.
    count = IntegrationSettings.history.count()
    admin_client.post(url)
    assert IntegrationSettings.history.count() == count


def test_a_restore_needs_a_post_and_the_change_permission(client, admin_client, account):
    integration_settings_update(account.integration, channel_delay=timedelta(minutes=5))
    url = reverse(
        "admin:surveys_account_rules_restore",
        args=[account.pk, IntegrationSettings.history.filter(id=account.integration.pk).first().history_id],
    )
    assert admin_client.get(url).status_code == 405
    viewer = User.objects.create_user("viewer", password="pw-12345-viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    assert client.post(url).status_code == 403


def test_keys_and_other_accounts_records_are_never_restored(account):
    other = AccountFactory()
    integration_settings_update(other.integration, channel_delay=timedelta(minutes=5))
    elsewhere = IntegrationSettings.history.filter(id=other.integration.pk).first()
    with pytest.raises(NotRestorable):
        integration_rules_restore(
            account.integration, history_id=elsewhere.history_id, fields=["channel_delay"], user=None
        )
    own = IntegrationSettings.history.filter(id=account.integration.pk).first()
    with pytest.raises(NotRestorable):
        integration_rules_restore(account.integration, history_id=own.history_id, fields=["test_api_key"], user=None)


def test_the_rules_a_restore_puts_back_are_the_admins_rules_section():
    fields = rule_fields(AccountAdmin(Account, None))
    assert {"channel_delay", "suppression_window", "do_not_send_tags", "email_enabled", "chat_enabled"} <= set(fields)
    assert not {"mode", "test_api_key", "production_api_key", "intercom_access_token"} & set(fields)


def test_a_support_user_given_from_the_users_side_is_on_record_too(account):
    ada = User.objects.create_user("ada.acme")
    ada.support_accounts.add(account)
    assert changes_of(history(account)[0])["Support users"] == ("—", "ada.acme")


def test_rules_the_settings_no_longer_allow_are_not_put_back(admin_client, account):
    integration = account.integration
    integration_settings_update(integration, sample_percent=25)
    version = IntegrationSettings.history.filter(id=integration.pk).first()
    # A value the column holds (so on every database) but today's rules refuse: a sample of none.
    IntegrationSettings.history.filter(history_id=version.history_id).update(sample_percent=0)
    integration_settings_update(integration, sample_percent=50)
    url = reverse("admin:surveys_account_rules_restore", args=[account.pk, version.history_id])
    page = admin_client.post(url, follow=True).content.decode()
    assert "can&#x27;t be put back as they were" in page
    integration.refresh_from_db()
    assert integration.sample_percent == 50
