"""The accounts moved to surveys (surveys 0009): integrations keeps only the raw webhooks, by workspace id."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0004_support_users_and_alerts"),
        ("surveys", "0009_accounts_move_from_integrations"),
    ]

    operations = [
        # Which account a webhook was for follows from its workspace id; the domain decides it.
        migrations.RemoveField(model_name="inboundwebhook", name="account"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ConversationEvent"),
                migrations.DeleteModel(name="Teammate"),
                migrations.DeleteModel(name="IntegrationSettings"),
                migrations.DeleteModel(name="Account"),
            ],
            database_operations=[],
        ),
    ]
