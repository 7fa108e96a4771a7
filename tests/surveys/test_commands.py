from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from surveys.accounts.account import integration_pause
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
        (["--channels", "email,phone"], "Unknown channel: phone"),
        (["--language", "x" * 40], "language"),
    ],
)
def test_account_upsert_refuses_bad_settings(args, message):
    with pytest.raises(CommandError, match=message):
        run("account_upsert", "acme01", *args)


def test_account_upsert_refuses_a_duration_it_cannot_read():
    with pytest.raises(CommandError, match="is not a duration"):
        run("account_upsert", "acme01", "--channel-delay", "soon")


TEST_KEY, LIVE_KEY, TOKEN = "acme-test-key-123456", "acme-live-key-abcdef", "acme-intercom-token-7890"


def upsert(*args: str, stdin: str | None = None) -> tuple[str, str]:
    """account_upsert's output and its notes (stderr), with `stdin` as standard input."""
    out, err = StringIO(), StringIO()
    extra = {"stdin": StringIO(stdin)} if stdin is not None else {}
    call_command("account_upsert", *args, stdout=out, stderr=err, **extra)
    return out.getvalue(), err.getvalue()


def test_account_upsert_sets_everything_the_admin_sets(monkeypatch):
    monkeypatch.setenv("ACME_TEST_KEY", TEST_KEY)
    monkeypatch.setenv("ACME_TOKEN", TOKEN)
    User.objects.create_user("ada.acme")
    User.objects.create_user("bo.acme")
    output, notes = upsert(
        "acme01",
        "--name", "Acme",
        "--disable",
        "--mode", "live",
        "--test-api-key-env", "ACME_TEST_KEY",
        "--production-api-key", "-",
        "--intercom-access-token-env", "ACME_TOKEN",
        "--stella-api-url", "https://acme.api.stellaconnect.net",
        "--brand", "Acme Shoes",
        "--language", "en-US",
        "--channels", "chat",
        "--channel-delay", "90s",
        "--suppression-window", "12h",
        "--do-not-send-tags", "spam, fraud",
        "--alert-recipients", "ops@acme.example,cs@acme.example",
        "--support-user", "ada.acme,bo.acme",
        stdin=f"{LIVE_KEY}\n",
    )  # fmt: skip
    account = Account.objects.get(intercom_workspace_id="acme01")
    integration = account.integration
    assert account.name == "Acme"
    assert (integration.enabled, integration.mode) == (False, "live")
    assert (integration.api_key_for("test"), integration.api_key_for("live"), integration.intercom_token) == (
        TEST_KEY,
        LIVE_KEY,
        TOKEN,
    )
    assert integration.stella_api_url == "https://acme.api.stellaconnect.net"
    assert (integration.brand, integration.language) == ("Acme Shoes", "en-US")
    assert integration.enabled_channels == {"chat"}
    assert (integration.channel_delay, integration.suppression_window) == (timedelta(seconds=90), timedelta(hours=12))
    assert integration.do_not_send_tag_names == {"spam", "fraud"}
    assert integration.alert_recipient_list == ["ops@acme.example", "cs@acme.example"]
    assert sorted(account.support_users.values_list("username", flat=True)) == ["ada.acme", "bo.acme"]
    assert "test key ••••3456, production key ••••cdef, Intercom token ••••7890" in output
    assert "brand Acme Shoes, language en-US" in output and "support users ada.acme, bo.acme" in output
    for secret in (TEST_KEY, LIVE_KEY, TOKEN):
        assert secret not in output + notes
    assert notes == ""  # nothing came from the command line

    # Run again, it changes nothing; empty values clear what may be cleared.
    again, _ = upsert("acme01", "--stella-api-url", "", "--brand", "", "--alert-recipients", "", "--channels", "none")
    integration.refresh_from_db()
    assert (integration.stella_api_url, integration.brand, integration.alert_recipients) == ("", "", "")
    assert integration.enabled_channels == set()
    assert integration.api_key_for("live") == LIVE_KEY and again.startswith("Updated Acme (workspace acme01)")


def test_account_upsert_moves_an_account_to_another_workspace_id_once():
    upsert("acme-typo", "--name", "Acme")
    moved, _ = upsert("acme-typo", "--new-workspace-id", "acme01", "--brand", "Acme")
    assert moved.startswith("Updated Acme (workspace acme01)")
    again, _ = upsert("acme-typo", "--new-workspace-id", "acme01", "--brand", "Acme")  # the script, run again
    assert again.startswith("Updated Acme (workspace acme01)")
    assert list(Account.objects.values_list("intercom_workspace_id", flat=True)) == ["acme01"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme01", "--new-workspace-id", "taken"], "intercom_workspace_id: Account with this Intercom workspace id"),
        (["nobody", "--new-workspace-id", "acme02"], "No account has workspace id nobody, to move to acme02"),
    ],
)
def test_account_upsert_refuses_a_workspace_id_it_cannot_move_to(args, message):
    upsert("acme01")
    upsert("taken")
    with pytest.raises(CommandError, match=message):
        upsert(*args)


def test_account_upsert_says_which_support_user_does_not_exist_and_changes_nothing():
    User.objects.create_user("ada.acme")
    with pytest.raises(CommandError) as refused:
        upsert("acme01", "--name", "Acme", "--support-user", "ada.acme", "--support-user", "zoe.acme")
    assert "No user named 'zoe.acme'" in str(refused.value) and "--create-support-users" in str(refused.value)
    assert not Account.objects.exists()


def test_account_upsert_creates_support_users_when_asked_and_removes_them():
    User.objects.create_user("ada.acme")
    output, _ = upsert("acme01", "--support-user", "ada.acme,zoe.acme", "--create-support-users")
    zoe = User.objects.get(username="zoe.acme")
    assert not zoe.has_usable_password() and not zoe.is_staff
    assert "Created the user 'zoe.acme' without a password" in output and "changepassword zoe.acme" in output
    account = Account.objects.get(intercom_workspace_id="acme01")
    assert sorted(account.support_users.values_list("username", flat=True)) == ["ada.acme", "zoe.acme"]
    upsert("acme01", "--remove-support-user", "ada.acme")
    assert list(account.support_users.values_list("username", flat=True)) == ["zoe.acme"]
    assert User.objects.filter(username="ada.acme").exists()


def test_account_upsert_undoes_a_created_support_user_when_the_account_is_refused():
    with pytest.raises(CommandError, match="stella_api_url"):
        upsert("acme01", "--support-user", "zoe.acme", "--create-support-users", "--stella-api-url", "not a url")
    assert not User.objects.filter(username="zoe.acme").exists() and not Account.objects.exists()


def test_account_upsert_warns_of_a_secret_on_the_command_line_without_echoing_it():
    output, notes = upsert("acme01", "--intercom-access-token", TOKEN)
    assert "--intercom-access-token on the command line shows in `ps`" in notes
    assert "--intercom-access-token-env" in notes
    assert TOKEN not in output + notes and "Intercom token ••••7890" in output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--test-api-key-env", "ACME_UNSET_KEY"], None, "--test-api-key-env ACME_UNSET_KEY: the variable is not set"),
        (["--test-api-key", " "], None, "--test-api-key is empty"),
        (["--test-api-key", "-"], "", "--test-api-key -: nothing on standard input"),
        (["--test-api-key", "-", "--production-api-key", "-"], "a\nb\n", "Only one secret can come from standard"),
        (["--test-api-key", TEST_KEY, "--test-api-key-env", "ACME_TEST_KEY"], None, "not both"),
        (["--alert-recipients", "ops@acme.example, ops"], None, "'ops' is not an email address"),
        (["--stella-api-url", "acme.api"], None, "stella_api_url: Enter a valid URL"),
    ],
)
def test_account_upsert_refuses_a_secret_or_setting_it_cannot_use(monkeypatch, args, stdin, message):
    monkeypatch.delenv("ACME_UNSET_KEY", raising=False)
    with pytest.raises(CommandError, match=message) as refused:
        upsert("acme01", *args, stdin=stdin)
    assert TEST_KEY not in str(refused.value)
    assert not Account.objects.exists()


def test_account_upsert_lifts_a_pause_when_it_sets_a_new_key():
    upsert("acme01", "--test-api-key", "-", stdin="old-key-0000\n")
    account = Account.objects.get(intercom_workspace_id="acme01")
    integration_pause(account.pk, reason="API key rejected", now=timezone.now())
    upsert("acme01", "--test-api-key", "-", stdin=f"{TEST_KEY}\n")
    account.health.refresh_from_db()
    assert account.health.sending_paused_at is None


def test_demo_setup_creates_the_demo_accounts_and_admin_once():
    first = run("portal_setup_demo")
    second = run("portal_setup_demo")
    assert "Created the local admin user" in first and "Created the local admin user" not in second
    assert sorted(Account.objects.values_list("intercom_workspace_id", flat=True)) == [
        "demo", "demo-delayed", "demo-quiet", "demo-rules", "demo-sample",
    ]  # fmt: skip
    delayed = Account.objects.get(intercom_workspace_id="demo-delayed").integration
    assert delayed.channel_delay == timedelta(minutes=1)
    rules = Account.objects.get(intercom_workspace_id="demo-rules").integration
    assert (rules.min_teammate_replies, rules.max_days_since_reply, rules.attribution) == (1, 7, "last_replier")
    assert Account.objects.get(intercom_workspace_id="demo-sample").integration.sample_percent == 50
    assert User.objects.get(username="admin").is_superuser
    support = User.objects.get(username="support")
    assert not support.is_staff
    assert list(support.support_accounts.values_list("intercom_workspace_id", flat=True)) == ["demo"]
    assert "user 'admin', password 'admin'" in second


def test_account_upsert_sets_the_read_back_from_stella_and_intercom_notes(monkeypatch):
    monkeypatch.setenv("ACME_SECRET", "stella-secret-0000-9999")
    out, _ = upsert(
        "acme1", "--stella-api-secret-env", "ACME_SECRET", "--no-employee-sync", "--feedback-return",
        "--reconcile-after", "12h", "--intercom-notes", "--intercom-note-author", "4100099",
    )  # fmt: skip
    integration = Account.objects.get(intercom_workspace_id="acme1").integration
    assert integration.stella_secret == "stella-secret-0000-9999"
    assert (integration.employee_sync_enabled, integration.feedback_return_enabled) == (False, True)
    assert integration.reconcile_after == timedelta(hours=12)
    assert (integration.intercom_notes_enabled, integration.intercom_note_author_id) == (True, "4100099")
    assert "stella-secret-0000-9999" not in out
    assert "employee sync off, feedback return on, reconcile after 12h, Intercom notes on, as 4100099" in out


# ---- Inbox app and service recovery ----


def test_account_upsert_sets_service_recovery_and_keeps_the_webhook_secret(monkeypatch, db):
    monkeypatch.setenv("ACME_HOOK", "https://hooks.slack.example/services/T000/B000/abcdefsecret1234")
    out, _ = upsert(
        "acme-recovery", "--low-rating-threshold", "2", "--low-rating-tag", "low-rating", "--low-rating-note",
        "--low-rating-assign", "team:5500001", "--low-rating-webhook-env", "ACME_HOOK",
    )  # fmt: skip
    integration = Account.objects.get(intercom_workspace_id="acme-recovery").integration
    assert (integration.low_rating_threshold, integration.low_rating_tag, integration.low_rating_note) == (
        2, "low-rating", True,
    )  # fmt: skip
    assert integration.low_rating_assign == "team:5500001"
    assert integration.low_rating_webhook_url.endswith("abcdefsecret1234")
    assert "Service recovery at 2★ or fewer: tag low-rating, note, assign to team:5500001, webhook" in out
    assert "abcdefsecret1234" not in out
    out, _ = upsert("acme-recovery", "--low-rating-threshold", "0")
    assert "Service recovery off" in out
    assert Account.objects.get(intercom_workspace_id="acme-recovery").integration.low_rating_threshold is None


def test_account_upsert_refuses_a_threshold_out_of_range_and_a_webhook_that_isnt_a_url(monkeypatch, db):
    with pytest.raises(CommandError, match="1 to 5 stars"):
        upsert("acme-recovery", "--low-rating-threshold", "6")
    monkeypatch.setenv("NOT_A_URL", "hooks.slack.example/no-scheme")
    with pytest.raises(CommandError, match="low_rating_webhook"):
        upsert("acme-recovery", "--low-rating-webhook-env", "NOT_A_URL")


def test_account_upsert_sets_the_rules_of_whom_to_survey():
    out, _ = upsert(
        "acme-rules", "--include-teams", "5100001, 5100003", "--exclude-teams", "5100002",
        "--min-teammate-replies", "1", "--max-days-since-reply", "7", "--sample-percent", "25",
    )  # fmt: skip
    integration = Account.objects.get(intercom_workspace_id="acme-rules").integration
    assert (integration.include_team_ids, integration.exclude_team_ids) == ({"5100001", "5100003"}, {"5100002"})
    assert (integration.min_teammate_replies, integration.max_days_since_reply, integration.sample_percent) == (
        1,
        7,
        25,
    )
    assert "included teams 5100001, 5100003, excluded teams 5100002, minimum teammate replies 1" in out
    assert "days since the last reply at most 7, sample 25%" in out
    out, _ = upsert(
        "acme-rules", "--time-zone", "Europe/Paris", "--quiet-hours", "21:00-08:00", "--attribution", "last-replier"
    )
    assert "credit the last teammate to reply, quiet hours 21:00-08:00 Europe/Paris" in out
    upsert("acme-rules", "--max-days-since-reply", "off", "--include-teams", "", "--sample-percent", "100")
    integration.refresh_from_db()
    assert (integration.max_days_since_reply, integration.include_teams, integration.sample_percent) == (None, "", 100)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample-percent", "0"], "sample_percent"),
        (["--sample-percent", "101"], "sample_percent"),
        (["--include-teams", "Billing team"], "Not an Intercom team id: Billing team"),
        (["--min-teammate-replies", "1000"], "min_teammate_replies"),
        (["--time-zone", "Mars/Olympus"], "Not a time zone: 'Mars/Olympus'"),
        (["--quiet-hours", "9pm-8am"], "Not quiet hours: '9pm-8am'"),
        (["--quiet-hours", "08:00-08:00"], "Not quiet hours"),
    ],
)
def test_account_upsert_refuses_rules_it_cannot_keep(args, message):
    with pytest.raises(CommandError, match=message):
        upsert("acme-rules", *args)
    assert not Account.objects.filter(intercom_workspace_id="acme-rules").exists()
