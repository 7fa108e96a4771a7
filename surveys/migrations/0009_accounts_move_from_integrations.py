"""Accounts, their settings, teammates and conversation events move from integrations to surveys.

The vendor layer keeps only what the vendors define (raw webhooks, the Intercom and Stella
clients); an account is a set of survey rules and the keys to act on them, so it belongs to
the domain. Only Django's idea of the models moves here: the tables stay as they are until
0010 renames them, and content types (so permissions given to groups) move with the models.
"""

import datetime

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MOVED = ("account", "integrationsettings", "teammate", "conversationevent")


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="surveys", model=model).exists():
            ContentType.objects.filter(app_label="integrations", model=model).update(app_label="surveys")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="integrations", model=model).exists():
            ContentType.objects.filter(app_label="surveys", model=model).update(app_label="integrations")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("integrations", "0004_support_users_and_alerts"),
        ("surveys", "0008_backfill_daily_counts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Account",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(max_length=200)),
                        (
                            "intercom_workspace_id",
                            models.CharField(
                                help_text="The app_id Intercom puts on every webhook (Settings → Workspace data in Intercom).",
                                max_length=64,
                                unique=True,
                                verbose_name="Intercom workspace id",
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "support_users",
                            models.ManyToManyField(
                                blank=True,
                                help_text="People of this company who may see its status page and API (they need no admin access).",
                                related_name="support_accounts",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["name"],
                        "db_table": "integrations_account",
                    },
                ),
                migrations.CreateModel(
                    name="IntegrationSettings",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "enabled",
                            models.BooleanField(default=True, help_text="Off: webhooks are recorded and ignored."),
                        ),
                        (
                            "mode",
                            models.CharField(
                                choices=[("test", "Test"), ("live", "Live")],
                                default="test",
                                help_text="Test sends with the test key (surveys go to the test address); live with the production key.",
                                max_length=8,
                            ),
                        ),
                        ("test_api_key", models.CharField(blank=True, max_length=200, verbose_name="test API key")),
                        (
                            "production_api_key",
                            models.CharField(blank=True, max_length=200, verbose_name="production API key"),
                        ),
                        ("email_enabled", models.BooleanField(default=True, verbose_name="email channel")),
                        ("chat_enabled", models.BooleanField(default=True, verbose_name="chat channel")),
                        (
                            "channel_delay",
                            models.DurationField(
                                default=datetime.timedelta(0),
                                help_text="Wait this long after a close before sending; a reopen in the meantime cancels.",
                            ),
                        ),
                        (
                            "suppression_window",
                            models.DurationField(
                                default=datetime.timedelta(0),
                                help_text="Don't survey the same customer again within this time. 0 turns it off.",
                            ),
                        ),
                        (
                            "do_not_send_tags",
                            models.CharField(
                                blank=True,
                                default="fraud, dupe, do_not_send_stella",
                                help_text="Comma-separated. A first message tagged with one is sent flagged do not send.",
                                max_length=500,
                            ),
                        ),
                        (
                            "brand",
                            models.CharField(
                                blank=True, help_text="Only for multi-brand Stella companies.", max_length=100
                            ),
                        ),
                        (
                            "language",
                            models.CharField(blank=True, help_text="ISO 639-1, e.g. en or en-US.", max_length=16),
                        ),
                        ("intercom_access_token", models.CharField(blank=True, max_length=300)),
                        (
                            "stella_api_url",
                            models.URLField(
                                blank=True,
                                help_text="Only if Stella gave the company its own host, e.g. https://acme.api.stellaconnect.net.",
                                verbose_name="Stella API URL",
                            ),
                        ),
                        (
                            "alert_recipients",
                            models.CharField(
                                blank=True,
                                help_text="Comma-separated emails told when over 5% of the last hour's requests are invalid or failed.",
                                max_length=500,
                            ),
                        ),
                        ("sending_paused_at", models.DateTimeField(blank=True, null=True)),
                        ("sending_paused_reason", models.CharField(blank=True, max_length=200)),
                        ("intercom_token_rejected_at", models.DateTimeField(blank=True, null=True)),
                        ("error_alert_since", models.DateTimeField(blank=True, null=True)),
                        ("error_alert_rate", models.FloatField(blank=True, null=True)),
                        ("error_alert_emailed_at", models.DateTimeField(blank=True, null=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "account",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="integration",
                                to="surveys.account",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "integration settings",
                        "verbose_name_plural": "integration settings",
                        "db_table": "integrations_integrationsettings",
                    },
                ),
                migrations.CreateModel(
                    name="Teammate",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("intercom_id", models.CharField(max_length=64, verbose_name="Intercom admin id")),
                        ("name", models.CharField(blank=True, max_length=200)),
                        ("email", models.CharField(blank=True, max_length=254)),
                        ("is_bot", models.BooleanField(default=False)),
                        (
                            "stella_custom_id",
                            models.CharField(
                                blank=True,
                                help_text="When set, Stella is told this custom id instead of the teammate's email.",
                                max_length=100,
                                verbose_name="Stella employee custom id",
                            ),
                        ),
                        (
                            "fetched_at",
                            models.DateTimeField(blank=True, help_text="Last looked up in Intercom.", null=True),
                        ),
                        (
                            "account",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="teammates",
                                to="surveys.account",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["account", "name"],
                        "db_table": "integrations_teammate",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("account", "intercom_id"), name="one_teammate_per_intercom_id"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ConversationEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("conversation_id", models.CharField(max_length=64)),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("reopened", "Reopened"),
                                    ("customer_replied", "Customer replied"),
                                    ("snoozed", "Snoozed"),
                                    ("deleted", "Deleted"),
                                    ("tagged", "First message tagged"),
                                ],
                                max_length=32,
                            ),
                        ),
                        (
                            "occurred_at",
                            models.DateTimeField(help_text="The notification's created_at: events are ordered by it."),
                        ),
                        ("tags", models.JSONField(blank=True, default=list)),
                        (
                            "account",
                            models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="surveys.account"),
                        ),
                        (
                            "inbound_webhook",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to="integrations.inboundwebhook",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["occurred_at"],
                        "db_table": "integrations_conversationevent",
                        "indexes": [
                            models.Index(
                                fields=["account", "conversation_id", "occurred_at"],
                                name="integration_account_72cdf6_idx",
                            )
                        ],
                    },
                ),
                migrations.AlterField(
                    model_name="apirequest",
                    name="account",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="api_requests", to="surveys.account"
                    ),
                ),
                migrations.AlterField(
                    model_name="dailycount",
                    name="account",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="daily_counts", to="surveys.account"
                    ),
                ),
                migrations.AlterField(
                    model_name="surveyrequest",
                    name="account",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="survey_requests",
                        to="surveys.account",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
