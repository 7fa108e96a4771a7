from django_q.models import Schedule

from portal.schedules import SCHEDULES, SEND_DUE_TASK, WAKE_SCHEDULE, schedules_ensure


def test_migrate_leaves_every_declared_schedule_in_place(db):
    """pytest-django migrated this database: the post-migrate hook ran the registry."""
    assert set(Schedule.objects.values_list("name", "func")) == {
        *((every.name, every.func) for every in SCHEDULES),
        (WAKE_SCHEDULE, SEND_DUE_TASK),
    }


def test_ensuring_again_corrects_a_stale_schedule_and_keeps_one_of_each(db):
    Schedule.objects.filter(name=SCHEDULES[0].name).update(func="integrations.tasks.process_inbound_webhooks")
    Schedule.objects.filter(name=SCHEDULES[1].name).delete()
    schedules_ensure()
    schedules_ensure()
    assert Schedule.objects.get(name=SCHEDULES[0].name).func == SCHEDULES[0].func
    assert Schedule.objects.filter(name=SCHEDULES[1].name).count() == 1
    assert Schedule.objects.count() == len(SCHEDULES) + 1


def test_ensuring_leaves_the_wake_up_time_alone(db):
    wake = Schedule.objects.get(name=WAKE_SCHEDULE)
    schedules_ensure()
    assert Schedule.objects.get(name=WAKE_SCHEDULE).next_run == wake.next_run
