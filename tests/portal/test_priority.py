"""A background process lowers its priority where the scheduler looks: its own session's autogroup when it leads one
(nice alone orders processes only inside a session), its nice alone when it shares a session."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="a kernel without autogroup"),
]

# The child lowers itself, then reads back from the kernel what it is now.
CHILD = """
import json, os
from pathlib import Path
from portal.priority import priority_lower
lowered = priority_lower(7)
print(json.dumps({"lowered": lowered, "nice": os.getpriority(os.PRIO_PROCESS, 0),
                  "autogroup": Path("/proc/self/autogroup").read_text().split()}))
"""


def run_child(*, own_session: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True,
        start_new_session=own_session, timeout=30,
    )  # fmt: skip
    return json.loads(done.stdout)


def autogroup_nice(fields: list[str]) -> int:
    return int(fields[fields.index("nice") + 1])  # "/autogroup-85 nice 7"


def test_a_process_leading_its_own_session_lowers_the_session_too():
    child = run_child(own_session=True)

    assert child["lowered"] == "session"
    assert autogroup_nice(child["autogroup"]) == 7
    assert child["nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)


def test_a_process_sharing_a_session_lowers_only_itself():
    mine = Path("/proc/self/autogroup").read_text().split()

    child = run_child(own_session=False)

    assert child["lowered"] == "process"
    assert child["autogroup"] == mine  # the terminal's, or the test runner's, is left as it was
    assert child["nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
