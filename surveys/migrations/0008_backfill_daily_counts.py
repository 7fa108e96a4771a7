from django.db import migrations


def backfill(apps, schema_editor):
    """Requests recorded before the status page's counts existed: count them from the log."""
    from surveys.counts import daily_counts_rebuild

    models = tuple(apps.get_model("surveys", name) for name in ("SurveyRequest", "ApiRequest", "DailyCount"))
    daily_counts_rebuild(models=models)


class Migration(migrations.Migration):
    dependencies = [("surveys", "0007_delay_ends_at")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
