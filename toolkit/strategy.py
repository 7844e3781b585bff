"""Which Ansible strategy a run uses: `linear` (Ansible's own, the default) or `mitogen`.

mitogen (pinned in pyproject.toml) replaces the per-task SSH round trips and module
uploads of the linear strategy with one persistent Python interpreter per host, and runs
the same plays. It is opt-in: `gpuforge apply --strategy mitogen`, or the setting
GPUFORGE_STRATEGY=mitogen in the environment. Plays that reboot hosts (gpu-node,
driver-upgrade) pin `strategy: linear` themselves and run with Ansible's own whatever is
chosen here. docs/benchmarks.md has the measured difference.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from toolkit.errors import InvalidInput, PrerequisiteMissing

SETTING = "GPUFORGE_STRATEGY"
STRATEGIES = ("linear", "mitogen")
MITOGEN_STRATEGY = "mitogen_linear"


def chosen(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The flag if given, else the setting, else `linear`; anything else is invalid input."""
    env = os.environ if environ is None else environ
    value = (flag if flag is not None else env.get(SETTING, "")).strip().lower() or "linear"
    if value not in STRATEGIES:
        where = "--strategy" if flag is not None else SETTING
        raise InvalidInput(f"{where} is {value!r}; expected one of {', '.join(STRATEGIES)}",
                           hint="mitogen is opt-in; leave it unset for Ansible's linear strategy")
    return value


def mitogen_plugins_dir() -> Path:
    """The strategy plugin directory of the installed ansible_mitogen package."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteMissing(
            "the mitogen strategy was asked for, but the mitogen package is not installed "
            "in gpuforge's Python environment",
            hint="pip install the version pinned in pyproject.toml (mitogen==0.3.54), "
                 "or run bash scripts/setup.sh")
    return Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"


def strategy_envvars(name: str) -> dict[str, str]:
    """What ansible-playbook's environment needs for the strategy `name` (set either way, so
    an ANSIBLE_STRATEGY exported in the caller's shell does not pick the strategy instead)."""
    if name == "linear":
        return {"ANSIBLE_STRATEGY": "linear"}
    return {"ANSIBLE_STRATEGY": MITOGEN_STRATEGY,
            "ANSIBLE_STRATEGY_PLUGINS": str(mitogen_plugins_dir())}


def envvars_from_setting(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the strategy the setting (or `--strategy`, which sets it) names."""
    return strategy_envvars(chosen(None, environ))


@contextlib.contextmanager
def for_this_run(flag: str | None) -> Iterator[str]:
    """Check the strategy (exit 3 or 5 before any host is touched) and hand it to the runner
    through the setting for the duration of one command; the process's setting is restored."""
    name = chosen(flag)
    strategy_envvars(name)
    before = os.environ.get(SETTING)
    os.environ[SETTING] = name
    try:
        yield name
    finally:
        if before is None:
            os.environ.pop(SETTING, None)
        else:
            os.environ[SETTING] = before
