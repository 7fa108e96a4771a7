from django.db import migrations
from django.utils import timezone

SWEEP = "Send due survey requests"
WAKE = "Send survey requests coming due"
FUNC = "surveys.tasks.send_due_survey_requests"


def create_schedules(apps, schema_editor):
    """Every minute, queue whatever is due and nobody holds; the wake-up is moved by the code to the
    next send-after time, so delayed requests don't wait for the minute to turn."""
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(name=SWEEP, defaults={"func": FUNC, "schedule_type": "I", "minutes": 1, "repeats": -1})
    Schedule.objects.update_or_create(
        name=WAKE, defaults={"func": FUNC, "schedule_type": "O", "repeats": 0, "next_run": timezone.now()}
    )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=[SWEEP, WAKE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0002_claims_and_call_times"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
