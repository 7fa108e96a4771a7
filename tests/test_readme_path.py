"""The README's webhook path names real code: every `module.py` `name` pair in it imports, so a rename that forgets
the README fails here rather than misleading a newcomer."""

import importlib
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = re.compile(r"\*\*A webhook's path, one module per step\*\*.*?\n\n((?:\d+\..*\n)+)", re.S)
PAIR = re.compile(r"`([\w/]+)\.py` `([\w.]+)`")


def named_in_the_path() -> list[tuple[str, str]]:
    section = SECTION.search(README.read_text())
    assert section, "the README's webhook path section is missing"
    return PAIR.findall(section.group(1))


def test_the_path_is_about_ten_steps_each_naming_its_code():
    steps = re.findall(r"^\d+\. ", SECTION.search(README.read_text()).group(1), re.M)
    assert 8 <= len(steps) <= 12
    assert len(named_in_the_path()) >= len(steps)


def test_every_function_the_path_names_exists():
    for path, name in named_in_the_path():
        thing = importlib.import_module(path.replace("/", "."))
        for part in name.split("."):
            assert hasattr(thing, part), f"README names {path}.py {name}, which has no {part}"
            thing = getattr(thing, part)
