"""gpuforge.infra.dkms_status / dkms_missing_kernels on recorded `dkms status` output.

The nvidia_driver reboot gate refuses a reboot into a kernel DKMS has no nvidia module for;
these filters are how it reads dkms 3.x (Debian 12/13) and dkms 2.x (Ubuntu 22.04) alike."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "dkms"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpuforge_dkms_filter",
                                                  REPO / "plugins" / "filter" / "dkms.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dkms = _load()


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_dkms3_layout_reads_the_kernel_not_the_arch() -> None:
    entries = dkms.dkms_status(_fixture("dkms3-debian12.txt"))
    assert entries == [
        {"module": "gpuforge-standin", "version": "1.0", "kernel": "6.1.0-50-amd64",
         "arch": "x86_64", "state": "installed"},
        {"module": "nvidia-current", "version": "535.261.03", "kernel": "6.1.0-50-amd64",
         "arch": "x86_64", "state": "installed"},
    ]


def test_dkms2_layout_with_notes_warnings_and_added_lines() -> None:
    entries = dkms.dkms_status(_fixture("dkms2-ubuntu2204.txt"))
    assert [(e["module"], e["version"], e["kernel"], e["state"]) for e in entries] == [
        ("nvidia", "535.183.01", "5.15.0-113-generic", "installed"),
        ("nvidia", "535.183.01", "5.15.0-112-generic", "installed"),
        ("nvidia", "535.183.01", "5.15.0-105-generic", "built"),
        ("nvidia-fs", "2.17.5", "5.15.0-105-generic", "installed"),
        ("v4l2loopback", "0.12.7", "5.15.0-113-generic", "installed"),
        ("virtualbox", "6.1.38", "", "added"),
    ]


def test_added_only_module_has_no_kernel() -> None:
    assert dkms.dkms_status(_fixture("dkms3-added.txt")) == [
        {"module": "gpuforge-standin", "version": "1.0", "kernel": "", "arch": "",
         "state": "added"}]


def test_accepts_stdout_lines_and_ignores_blank_and_unknown_lines() -> None:
    lines = ["", "Deprecated feature: REMAKE_INITRD", "dkms: running auto installation service",
             "nvidia/550.163.01, 6.12.57+deb13-amd64, x86_64: installed"]
    assert [e["kernel"] for e in dkms.dkms_status(lines)] == ["6.12.57+deb13-amd64"]


def test_gate_passes_when_every_kernel_has_the_module() -> None:
    text = _fixture("dkms3-debian12.txt")
    assert dkms.dkms_missing_kernels(text, ["6.1.0-50-amd64"]) == []
    assert dkms.dkms_missing_kernels(text, ["6.1.0-50-amd64"], "^gpuforge-standin$") == []


def test_gate_names_the_kernel_without_a_module_dkms3() -> None:
    text = _fixture("dkms3-debian12.txt")
    kernels = ["6.1.0-50-amd64", "6.1.0-50-cloud-amd64"]
    assert dkms.dkms_missing_kernels(text, kernels, "^gpuforge-standin$") == [
        "6.1.0-50-cloud-amd64"]


def test_gate_with_a_version_counts_only_that_version() -> None:
    # Mid-upgrade: the old module is still installed for one kernel, the new one for the other.
    text = ("nvidia-current/535.216.03, 6.1.0-50-cloud-amd64, x86_64: installed\n"
            "nvidia-current/535.261.03, 6.1.0-50-amd64, x86_64: installed\n")
    kernels = ["6.1.0-50-amd64", "6.1.0-50-cloud-amd64"]
    assert dkms.dkms_missing_kernels(text, kernels) == []
    assert dkms.dkms_missing_kernels(text, kernels, "^nvidia(-current)?$", "535.261.03") == [
        "6.1.0-50-cloud-amd64"]


def test_gate_on_dkms2_counts_only_installed_and_only_the_named_module() -> None:
    text = _fixture("dkms2-ubuntu2204.txt")
    kernels = ["5.15.0-113-generic", "5.15.0-112-generic", "5.15.0-105-generic"]
    # 105 has the module only built (not installed) and an unrelated nvidia-fs installed.
    assert dkms.dkms_missing_kernels(text, kernels, "^nvidia$") == ["5.15.0-105-generic"]


def test_gate_before_any_build_misses_every_kernel() -> None:
    assert dkms.dkms_missing_kernels(_fixture("dkms3-added.txt"), ["a", "b"]) == ["a", "b"]
    assert dkms.dkms_missing_kernels("", ["6.1.0-50-amd64"]) == ["6.1.0-50-amd64"]


def test_bad_input_is_a_filter_error_not_a_traceback() -> None:
    with pytest.raises(AnsibleFilterError, match="dkms_status expects"):
        dkms.dkms_status(42)
    with pytest.raises(AnsibleFilterError, match="bad module pattern"):
        dkms.dkms_missing_kernels("", ["k"], "(")


def test_filters_are_registered_under_their_names() -> None:
    assert set(dkms.FilterModule().filters()) == {"dkms_status", "dkms_missing_kernels"}
