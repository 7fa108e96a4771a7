from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register("portal")
def queue_settings(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """A task that outlives `retry` is delivered to a second worker while the first still runs;
    unbounded attempts retry a failing task forever."""
    cluster = settings.Q_CLUSTER
    errors: list[CheckMessage] = []
    timeout, retry = cluster.get("timeout"), cluster.get("retry", 60)
    if not timeout or timeout >= retry:
        errors.append(
            Error(
                f"The task timeout ({timeout}) must be set and below retry ({retry}).",
                hint="Set Q_TIMEOUT below Q_RETRY, e.g. Q_TIMEOUT=60 Q_RETRY=90.",
                id="portal.E001",
            )
        )
    batch = settings.INTAKE_BATCH_SECONDS
    if timeout and timeout < 3 * batch:
        errors.append(
            Error(
                f"The task timeout ({timeout} s) is too short: an intake batch works for {batch:g} s and must end "
                "well inside it, or the task is killed half-way.",
                hint=f"Set Q_TIMEOUT to at least {3 * batch:g} (or INTAKE_BATCH_SECONDS lower), e.g. Q_TIMEOUT=60.",
                id="portal.E003",
            )
        )
    if not cluster.get("max_attempts"):
        errors.append(
            Error(
                "Task attempts are unbounded (max_attempts 0): a failing task would be retried forever.",
                hint="Set Q_MAX_ATTEMPTS to a positive number, e.g. 3.",
                id="portal.E002",
            )
        )
    return errors
