from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from surveys.models import Account

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_account_upsert_creates_an_account_with_its_settings():
    output = run(
        "account_upsert",
        "acme01",
        "--name",
        "Acme",
        "--test-api-key",
        "acme-test-key-123456",
        "--channels",
        "email",
        "--channel-delay",
        "10m",
        "--suppression-window",
        "7d",
        "--do-not-send-tags",
        "spam,fraud",
    )
    settings = Account.objects.get(intercom_workspace_id="acme01").integration
    assert settings.account.name == "Acme"
    assert settings.enabled_channels == {"email"}
    assert (settings.channel_delay, settings.suppression_window) == (timedelta(minutes=10), timedelta(days=7))
    assert settings.do_not_send_tag_names == {"spam", "fraud"}
    assert settings.test_api_key == "acme-test-key-123456"
    assert output.startswith("Created Acme (workspace acme01)")
    assert "test key ••••3456" in output
    assert "acme-test-key-123456" not in output


def test_account_upsert_strips_pasted_keys():
    run("account_upsert", "acme01", "--test-api-key", "  acme-test-key-123456\n")
    assert Account.objects.get(intercom_workspace_id="acme01").integration.api_key_for("test") == "acme-test-key-123456"


def test_account_upsert_changes_only_what_it_is_given():
    run(
        "account_upsert",
        "acme01",
        "--name",
        "Acme",
        "--channel-delay",
        "2h",
        "--production-api-key",
        "acme-live-key-abcdef",
    )
    output = run("account_upsert", "acme01", "--mode", "live", "--disable")
    settings = Account.objects.get(intercom_workspace_id="acme01").integration
    assert (settings.mode, settings.enabled, settings.channel_delay) == ("live", False, timedelta(hours=2))
    assert settings.api_key_for(settings.mode) == "acme-live-key-abcdef"
    assert output.startswith("Updated Acme")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channels", "email,phone"], r"Unknown channel\(s\): phone"),
        (["--language", "x" * 40], "language"),
    ],
)
def test_account_upsert_refuses_bad_settings(args, message):
    with pytest.raises(CommandError, match=message):
        run("account_upsert", "acme01", *args)


def test_account_upsert_refuses_a_duration_it_cannot_read():
    with pytest.raises(CommandError, match="is not a duration"):
        run("account_upsert", "acme01", "--channel-delay", "soon")


def test_demo_setup_creates_the_demo_accounts_and_admin_once():
    first = run("portal_setup_demo")
    second = run("portal_setup_demo")
    assert "Created the local admin user" in first and "Created the local admin user" not in second
    assert sorted(Account.objects.values_list("intercom_workspace_id", flat=True)) == ["demo", "demo-delayed"]
    delayed = Account.objects.get(intercom_workspace_id="demo-delayed").integration
    assert delayed.channel_delay == timedelta(minutes=1)
    assert User.objects.get(username="admin").is_superuser
    support = User.objects.get(username="support")
    assert not support.is_staff
    assert list(support.support_accounts.values_list("intercom_workspace_id", flat=True)) == ["demo"]
    assert "user 'admin', password 'admin'" in second
