"""`make screenshots` (the browser tests with SAVE_SCREENSHOTS=1) refreshes every picture the README shows: each
docs/*.png it names is saved by a browser test's screenshot(), and none of those is left out of the README."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_readme_picture_is_one_make_screenshots_saves():
    shown = set(re.findall(r"\]\(docs/([\w-]+\.png)\)", (ROOT / "README.md").read_text()))
    saved = {
        name
        for path in (ROOT / "tests" / "browser").glob("test_*.py")
        for name in re.findall(r"\bscreenshot\(\s*\w+,\s*\"([\w-]+\.png)\"\)", path.read_text())
    }
    assert "status-teammates.png" in shown and "status-teammate-answers.png" in shown  # the satisfaction report
    assert shown == saved
    assert shown == {path.name for path in (ROOT / "docs").glob("*.png")}  # no picture left behind
