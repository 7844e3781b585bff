"""`gpuforge check` runs the compatibility gate on each host's pinned choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.check import check_inventory
from toolkit.cli.app import main
from toolkit.compat_gate import host_compat_problems
from toolkit.inventory import SourcedValue


def sv(**values: object) -> dict[str, SourcedValue]:
    return {k: SourcedValue(v, f"group_vars/{k}.yml") for k, v in values.items()}


def test_open_module_on_volta_names_both_variables_and_files() -> None:
    [problem] = host_compat_problems("gpu1", sv(gpuforge_gpu_generation="volta",
                                                 nvidia_driver_kernel_module="open"))
    assert problem.variable == "nvidia_driver_kernel_module vs gpuforge_gpu_generation"
    assert "'open'" in problem.message and "volta" in problem.message
    assert problem.source == ("group_vars/nvidia_driver_kernel_module.yml; "
                              "group_vars/gpuforge_gpu_generation.yml")


def test_branch_too_old_for_pinned_vllm_names_the_runtime_pin() -> None:
    [problem] = host_compat_problems("gpu1", sv(nvidia_driver_branch="535", vllm_version="0.11.0"))
    assert problem.variable == "nvidia_driver_branch vs vllm_version"
    assert "driver branch 535 supports CUDA up to 12.2" in problem.message
    assert "vllm 0.11.0 needs CUDA 12.8" in problem.message
    assert "hint: pin driver branch 570 or newer" in problem.message


def test_auto_module_and_no_pins_are_not_judged() -> None:
    assert host_compat_problems("h", sv(nvidia_driver_kernel_module="auto")) == []
    assert host_compat_problems("h", sv(base_packages=["curl"])) == []


def test_good_combination_passes() -> None:
    assert host_compat_problems("h", sv(gpuforge_gpu_generation="hopper",
                                        nvidia_driver_branch="580",
                                        nvidia_driver_kernel_module="open",
                                        vllm_version="0.11.0", ollama_version="0.12.6")) == []


def test_distro_branch_is_lifted_by_the_vendor_source() -> None:
    pins = dict(gpuforge_distro="debian-13", nvidia_driver_branch="580")
    [problem] = host_compat_problems("h", sv(**pins))
    assert problem.variable == "nvidia_driver_branch vs gpuforge_distro"
    assert host_compat_problems("h", sv(**pins, nvidia_driver_source="vendor")) == []


def test_unknown_generation_is_a_problem() -> None:
    [problem] = host_compat_problems("h", sv(gpuforge_gpu_generation="kepler"))
    assert problem.variable == "gpuforge_gpu_generation"
    assert "not in seeds/compat.yml" in problem.message


def _inventory(tmp_path: Path, hostvars: str) -> Path:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    gpu1:\n" + hostvars, encoding="utf-8")
    return inv


def test_check_inventory_includes_compat_problems(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, "      nvidia_driver_branch: '535'\n      vllm_version: '0.11.0'\n")
    _, problems = check_inventory([inv], None)
    assert [p.variable for p in problems] == ["nvidia_driver_branch vs vllm_version"]
    assert str(inv) in problems[0].source


def test_gpuforge_check_refuses_a_bad_pin_with_exit_3(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, "      gpuforge_gpu_generation: blackwell\n"
                               "      nvidia_driver_kernel_module: proprietary\n")
    assert main(["check", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert "gpu1: nvidia_driver_kernel_module vs gpuforge_gpu_generation" in err
    assert "'proprietary' does not support blackwell" in err
