from django.db import migrations


class Migration(migrations.Migration):
    """Once created a schedule here; schedules are now declared in portal/schedules.py and
    ensured after every migrate, so this migration does nothing and stays only as a step in the chain."""

    dependencies = [
        ("surveys", "0002_claims_and_call_times"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = []
