from django.db import migrations


class Migration(migrations.Migration):
    """Once created a schedule here; schedules are now declared in portal/schedules.py and
    ensured after every migrate, so this migration does nothing and stays only as a step in the chain."""

    dependencies = [
        ("integrations", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = []
