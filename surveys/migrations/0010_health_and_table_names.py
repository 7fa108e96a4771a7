"""The moved tables take surveys' names; runtime state leaves the settings row for IntegrationHealth."""

import django.db.models.deletion
from django.db import migrations, models

RUNTIME_FIELDS = (
    "sending_paused_at",
    "sending_paused_reason",
    "intercom_token_rejected_at",
    "error_alert_since",
    "error_alert_rate",
    "error_alert_emailed_at",
)


def copy_runtime_state(apps, schema_editor):
    Account = apps.get_model("surveys", "Account")
    IntegrationSettings = apps.get_model("surveys", "IntegrationSettings")
    IntegrationHealth = apps.get_model("surveys", "IntegrationHealth")
    IntegrationHealth.objects.bulk_create(
        IntegrationHealth(account_id=row["account_id"], **{field: row[field] for field in RUNTIME_FIELDS})
        for row in IntegrationSettings.objects.values("account_id", *RUNTIME_FIELDS)
    )
    IntegrationHealth.objects.bulk_create(
        IntegrationHealth(account_id=pk)
        for pk in Account.objects.filter(health__isnull=True).values_list("pk", flat=True)
    )


def copy_runtime_state_back(apps, schema_editor):
    IntegrationSettings = apps.get_model("surveys", "IntegrationSettings")
    IntegrationHealth = apps.get_model("surveys", "IntegrationHealth")
    for row in IntegrationHealth.objects.values("account_id", *RUNTIME_FIELDS):
        IntegrationSettings.objects.filter(account_id=row.pop("account_id")).update(**row)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0005_accounts_moved_to_surveys"),
        ("surveys", "0009_accounts_move_from_integrations"),
    ]

    operations = [
        migrations.AlterModelTable(name="account", table=None),
        migrations.AlterModelTable(name="integrationsettings", table=None),
        migrations.AlterModelTable(name="teammate", table=None),
        migrations.AlterModelTable(name="conversationevent", table=None),
        migrations.RenameIndex(
            model_name="conversationevent",
            new_name="surveys_con_account_181512_idx",
            old_name="integration_account_72cdf6_idx",
        ),
        migrations.CreateModel(
            name="IntegrationHealth",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sending_paused_at", models.DateTimeField(blank=True, null=True)),
                ("sending_paused_reason", models.CharField(blank=True, max_length=200)),
                ("intercom_token_rejected_at", models.DateTimeField(blank=True, null=True)),
                ("error_alert_since", models.DateTimeField(blank=True, null=True)),
                ("error_alert_rate", models.FloatField(blank=True, null=True)),
                ("error_alert_emailed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="health", to="surveys.account"
                    ),
                ),
            ],
            options={
                "verbose_name": "integration health",
                "verbose_name_plural": "integration health",
            },
        ),
        migrations.RunPython(copy_runtime_state, copy_runtime_state_back),
        *(migrations.RemoveField(model_name="integrationsettings", name=field) for field in RUNTIME_FIELDS),
        migrations.AlterField(
            model_name="surveyrequest",
            name="reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("channel_unsupported", "Began in a channel Stella doesn't survey"),
                    ("channel_disabled", "Channel turned off for the account"),
                    ("invalid_customer", "No valid customer email"),
                    ("employee_not_found", "No teammate assigned"),
                    ("bot_assignee", "Assigned to a bot"),
                    ("suppressed_tag", "First message tagged do not send"),
                    ("suppression_window", "Customer surveyed within the suppression window"),
                    ("already_surveyed", "Conversation already surveyed"),
                ],
                max_length=32,
            ),
        ),
    ]
