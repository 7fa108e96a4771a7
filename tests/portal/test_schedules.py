from django.utils import timezone
from django_q.models import Schedule

from portal.schedules import RETIRED_SCHEDULES, SCHEDULES, SEND_DUE_TASK, schedules_ensure


def test_migrate_leaves_every_declared_schedule_in_place(db):
    """pytest-django migrated this database: the post-migrate hook ran the registry."""
    assert set(Schedule.objects.values_list("name", "func")) == {(every.name, every.func) for every in SCHEDULES}


def test_ensuring_again_corrects_a_stale_schedule_and_keeps_one_of_each(db):
    Schedule.objects.filter(name=SCHEDULES[0].name).update(func="integrations.tasks.process_inbound_webhooks")
    Schedule.objects.filter(name=SCHEDULES[1].name).delete()
    schedules_ensure()
    schedules_ensure()
    assert Schedule.objects.get(name=SCHEDULES[0].name).func == SCHEDULES[0].func
    assert Schedule.objects.filter(name=SCHEDULES[1].name).count() == 1
    assert Schedule.objects.count() == len(SCHEDULES)


def test_ensuring_deletes_the_retired_wake_up_and_keeps_the_minute_sweep(db):
    """An older version moved a one-off schedule to each send-after time; runcluster's poller does that job now."""
    Schedule.objects.create(
        name=RETIRED_SCHEDULES[0], func=SEND_DUE_TASK, schedule_type=Schedule.ONCE, next_run=timezone.now()
    )
    schedules_ensure()
    assert not Schedule.objects.filter(name__in=RETIRED_SCHEDULES).exists()
    sweep = Schedule.objects.get(func=SEND_DUE_TASK)
    assert (sweep.schedule_type, sweep.minutes, sweep.repeats) == (Schedule.MINUTES, 1, -1)


def test_ensuring_leaves_the_run_times_alone(db):
    sweep = Schedule.objects.get(func=SEND_DUE_TASK)
    Schedule.objects.filter(pk=sweep.pk).update(next_run=sweep.next_run.replace(year=2030))
    schedules_ensure()
    assert Schedule.objects.get(pk=sweep.pk).next_run.year == 2030
