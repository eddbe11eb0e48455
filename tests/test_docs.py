"""The README tells the truth: its commands are the ones CI runs, its tables list every
command, route and setting (in the spirit of sqlite-utils' tests/test_docs.py)."""

import json
import re
from pathlib import Path

import pytest

from receiver import config as settings
from receiver.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def indented_commands(text):
    return [line.strip() for line in text.splitlines() if line.startswith("    ")]


def test_readme_opens_with_the_two_commands():
    head = README.split("---")[0]
    commands = indented_commands(head)
    assert len(commands) == 2
    assert commands[0].endswith("runware-archive serve")
    assert "pytest" in commands[1]


def test_ci_runs_the_readmes_test_command():
    test_command = indented_commands(README.split("---")[0])[1]
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_cli_command_is_documented(name):
    assert f"runware-archive {name}" in README


@pytest.mark.parametrize("key", sorted(k for k in settings.DEFAULTS if k.startswith("RUNWARE_")))
def test_every_setting_is_documented(key):
    assert f"`{key}`" in README


def test_every_route_is_documented(app):
    def shape(rule):  # parameter names may differ: <task_uuid> in code, <taskUUID> here
        return re.sub(r"<[^>]*>", "<>", rule)

    rules = {shape(r.rule) for r in app.url_map.iter_rules()
             if r.endpoint != "static" and not r.rule.startswith("/sandbox")}
    documented = shape(README)
    missing = [rule for rule in rules if rule not in documented]
    assert not missing


def test_the_seed_examples_kept_with_the_tests_match_the_shared_ones():
    """tests/fixtures holds a copy so a checkout runs its tests alone; it must not drift
    from the specification's file when that one is beside the checkout."""
    from tests.conftest import SEED_EXAMPLES, SHARED_SEED_EXAMPLES

    if not SHARED_SEED_EXAMPLES.exists():
        pytest.skip("no ../shared beside this checkout")
    assert json.loads(SEED_EXAMPLES.read_text()) == json.loads(SHARED_SEED_EXAMPLES.read_text())
