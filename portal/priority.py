"""A background process's CPU priority: below the web's, so Intercom's webhooks are answered first.

`nice` alone does not do it on Linux with autogroup on (`/proc/sys/kernel/sched_autogroup_enabled`, the default of
most distributions' kernels): the scheduler shares the CPU between sessions first, and a process's nice orders it
only among the processes of its own session (man 7 sched). The cluster starts in a session of its own (runportal,
deploy/run_scaled.py, every systemd service), so at nice 10 two clusters draining a backlog still took 1.1 of 2
cores and the web's workers 0.3-0.45: webhooks queued for up to 1.4 s where they took 10 ms without them
(bench/fairness.py steady; 19 ms with this). So a process that leads its own session gives its session's autogroup
the same nice (a new session's starts at 0); one that shares its session (a terminal running both) changes only its
own nice, which is enough there. Under systemd with the cpu controller on, the unit's CPUWeight does the same
(deploy/systemd).
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def priority_lower(nice: int) -> str:
    """Lower this process's CPU priority by `nice` (processes it forks inherit it). Returns what was lowered:
    "session" (its own session's autogroup too) or "process" (its nice only: it shares its session, or the kernel
    has no autogroup)."""
    os.nice(nice)
    if os.getsid(0) != os.getpid():
        return "process"
    try:
        AUTOGROUP.write_text(str(min(19, nice)))
    except OSError:  # a kernel without autogroup
        return "process"
    return "session"
