from django.db import migrations
from django.db.models import Count, Q
from django.db.models.functions import TruncDate

# A frozen copy of the rules at the time: a migration never imports live code.
WAITING, FAILED = "waiting", "failed"
BUCKETS = {
    "scheduled": WAITING, "sending": WAITING, "sent": "sent", "suppressed": "suppressed",
    "cancelled": "cancelled", "invalid": "invalid", "failed": FAILED, "ambiguous": FAILED,
}  # fmt: skip


def backfill(apps, schema_editor):
    """Requests recorded before the status page's counts existed: count them from the log."""
    SurveyRequest = apps.get_model("surveys", "SurveyRequest")
    ApiRequest = apps.get_model("surveys", "ApiRequest")
    DailyCount = apps.get_model("surveys", "DailyCount")
    DailyCount.objects.all().delete()
    rows = {}
    per_day = (
        SurveyRequest.objects.annotate(day=TruncDate("closed_at"))
        .values("account_id", "day", "status", "decision")
        .annotate(n=Count("pk"))
    )
    for row in per_day:
        kind = "do_not_send" if (row["status"], row["decision"]) == ("sent", "do_not_send") else BUCKETS[row["status"]]
        key = (row["account_id"], row["day"], kind)
        rows[key] = rows.get(key, 0) + row["n"]
    calls_per_day = (
        ApiRequest.objects.annotate(day=TruncDate("created_at"))
        .values("account_id", "day")
        .annotate(
            tests=Count("pk", filter=Q(mode="test") & ~Q(url="")),
            invalid=Count("pk", filter=Q(outcome="invalid")),
        )
    )
    for row in calls_per_day:
        for kind, n in (("test_calls", row["tests"]), ("invalid_calls", row["invalid"])):
            if n:
                rows[(row["account_id"], row["day"], kind)] = n
    DailyCount.objects.bulk_create(
        DailyCount(account_id=account_id, day=day, kind=kind, count=n) for (account_id, day, kind), n in rows.items()
    )


class Migration(migrations.Migration):
    dependencies = [("surveys", "0007_delay_ends_at")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
