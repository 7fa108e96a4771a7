from django.db import migrations, models


class Migration(migrations.Migration):
    """The cancellation window gets its own column; existing requests take their send-after time,
    which is what it was until retries and resends moved it."""

    dependencies = [("surveys", "0006_request_names")]

    operations = [
        migrations.AddField("surveyrequest", "delay_ends_at", models.DateTimeField(null=True)),
        migrations.RunSQL("UPDATE surveys_surveyrequest SET delay_ends_at = send_after", migrations.RunSQL.noop),
        migrations.AlterField("surveyrequest", "delay_ends_at", models.DateTimeField()),
    ]
