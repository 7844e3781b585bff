"""gpuforge.infra.apt_policy / apt_pending on recorded `apt-cache policy` output.

The driver upgrade (nvidia_driver's `upgrade` entry point) drains a host only when apt_pending
says the pin moves an installed package; these are how it reads apt."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "apt" / "policy-upgrade-debian12.txt"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpuforge_apt_filter",
                                                  REPO / "plugins" / "filter" / "apt_policy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


apt = _load()


def test_policy_reads_installed_and_candidate_not_the_version_table() -> None:
    policy = apt.apt_policy(FIXTURE.read_text())
    assert policy["nvidia-smi"] == {"installed": "535.216.03-2~bpo12+1",
                                    "candidate": "535.261.03-1"}
    assert policy["nvidia-open-kernel-dkms"] == {"installed": "", "candidate": "535.261.03-1"}
    assert list(policy) == ["nvidia-smi", "libcuda1", "nvidia-persistenced",
                            "nvidia-open-kernel-dkms"]


def test_pending_lists_only_installed_packages_the_pin_moves() -> None:
    assert apt.apt_pending(FIXTURE.read_text()) == ["libcuda1", "nvidia-smi"]


def test_nothing_pending_when_installed_is_the_candidate() -> None:
    text = "nvidia-smi:\n  Installed: 535.261.03-1\n  Candidate: 535.261.03-1\n"
    assert apt.apt_pending(text) == []
    assert apt.apt_pending(text.splitlines()) == []
    assert apt.apt_pending("") == []


def test_a_package_apt_does_not_know_has_no_versions() -> None:
    # apt-cache policy prints only the name for an unknown package: nothing to upgrade.
    assert apt.apt_policy("nvidia-nonexistent:\n") == {
        "nvidia-nonexistent": {"installed": "", "candidate": ""}}
    assert apt.apt_pending("nvidia-nonexistent:\n") == []


def test_bad_input_is_a_filter_error_not_a_traceback() -> None:
    with pytest.raises(AnsibleFilterError, match="apt_policy expects"):
        apt.apt_policy(42)


def test_filters_are_registered_under_their_names() -> None:
    assert set(apt.FilterModule().filters()) == {"apt_policy", "apt_pending"}
