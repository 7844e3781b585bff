"""The opt-in mitogen strategy: flag over setting over linear; the pinned package's plugin is
what ansible-playbook is pointed at; a command's choice does not outlive it."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest

from toolkit.errors import ExitCode, InvalidInput
from toolkit.strategy import SETTING, chosen, for_this_run, strategy_envvars

ROOT = Path(__file__).resolve().parents[2]


def test_flag_wins_over_setting_which_wins_over_linear() -> None:
    assert chosen(None, {}) == "linear"
    assert chosen(None, {SETTING: " Mitogen "}) == "mitogen"
    assert chosen("linear", {SETTING: "mitogen"}) == "linear"
    with pytest.raises(InvalidInput) as bad:
        chosen(None, {SETTING: "free"})
    assert bad.value.code == ExitCode.INVALID_INPUT and SETTING in bad.value.message


def test_mitogen_points_ansible_at_the_pinned_package() -> None:
    pin = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines()
               if '"mitogen==' in line)
    assert f'"mitogen=={version("mitogen")}"' in pin  # the installed one is the pinned one
    env = strategy_envvars("mitogen")
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()
    assert strategy_envvars("linear") == {"ANSIBLE_STRATEGY": "linear"}


def test_a_commands_choice_is_restored_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTING, raising=False)
    with for_this_run("mitogen") as name:
        assert name == "mitogen" and os.environ[SETTING] == "mitogen"
    assert SETTING not in os.environ
    monkeypatch.setenv(SETTING, "linear")
    with pytest.raises(InvalidInput), for_this_run("nope"):
        pass
    assert os.environ[SETTING] == "linear"
