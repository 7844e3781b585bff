"""The compatibility gate refuses bad GPU/driver/module/runtime/distro mixes, naming both sides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from toolkit.compat import (
    CompatProblem,
    check_combination,
    generation_for_pci,
    load_compat,
    load_gpu_catalog,
    seeds_dir,
)

TABLE = load_compat()
NONE: dict[str, str | None] = {
    "gpu_generation": None,
    "driver_branch": None,
    "kernel_module": None,
    "runtime": None,
    "runtime_version": None,
    "distro": None,
}


VENDOR_REPO = True


def check(vendor_repo: bool = False, /, **given: str | None) -> list[CompatProblem]:
    args = {**NONE, **given}
    return check_combination(
        TABLE,
        gpu_generation=args["gpu_generation"],
        driver_branch=args["driver_branch"],
        kernel_module=args["kernel_module"],
        runtime=args["runtime"],
        runtime_version=args["runtime_version"],
        distro=args["distro"],
        vendor_repo=vendor_repo,
    )


def codes(problems: list[CompatProblem]) -> list[str]:
    return [p.code for p in problems]


def test_seeds_are_found_next_to_the_package() -> None:
    assert Path(__file__).resolve().parents[2] / "seeds" == seeds_dir()
    assert (seeds_dir() / "compat.yml").is_file()


def test_every_fact_in_compat_yml_has_a_source() -> None:
    data = yaml.safe_load((seeds_dir() / "compat.yml").read_text())
    facts = [
        *data["generations"].values(),
        *data["cuda_by_driver_branch"],
        *data["distros"].values(),
    ]
    for runtime in data["runtimes"].values():
        facts += [runtime, *runtime["builds"]]
    for fact in facts:
        assert str(fact.get("source", "")).strip(), fact


def test_open_module_on_volta_is_refused_naming_both() -> None:
    (problem,) = check(gpu_generation="volta", kernel_module="open", driver_branch="535")
    assert problem.code == "open-module-unsupported"
    assert "'open'" in problem.message and "volta" in problem.message
    assert "proprietary" in problem.hint


def test_proprietary_module_on_blackwell_is_refused() -> None:
    (problem,) = check(gpu_generation="blackwell", kernel_module="proprietary", driver_branch="570")
    assert problem.code == "proprietary-module-unsupported"
    assert "blackwell" in problem.message and "'proprietary'" in problem.message


def test_blackwell_needs_a_570_driver() -> None:
    (problem,) = check(gpu_generation="blackwell", kernel_module="open", driver_branch="550")
    assert problem.code == "driver-too-old-for-gpu"
    assert "550" in problem.message and "570" in problem.message and "blackwell" in problem.message


def test_driver_535_cannot_run_vllm_built_for_cuda_12_8() -> None:
    (problem,) = check(
        gpu_generation="hopper",
        driver_branch="535",
        kernel_module="open",
        runtime="vllm",
        runtime_version="0.11.0",
    )
    assert problem.code == "driver-too-old-for-runtime"
    assert problem.message == (
        "driver branch 535 supports CUDA up to 12.2, "
        "but vllm 0.11.0 needs CUDA 12.8 (driver >= 570)"
    )
    assert "570" in problem.hint


def test_full_driver_version_is_read_as_its_branch() -> None:
    assert check(runtime="vllm", runtime_version="0.11.0", driver_branch="570.172.08") == []
    assert codes(check(runtime="vllm", runtime_version="0.11.0", driver_branch="560.35.03")) == [
        "driver-too-old-for-runtime"
    ]


def test_vllm_versions_pick_their_cuda_build() -> None:
    # 0.16 moved to CUDA 12.9 (575), 0.24 to 13.0 (580)
    assert check(runtime="vllm", runtime_version="0.16.0", driver_branch="575") == []
    assert codes(check(runtime="vllm", runtime_version="0.24.0", driver_branch="575")) == [
        "driver-too-old-for-runtime"
    ]
    assert check(runtime="vllm", runtime_version="0.24.0", driver_branch="580") == []
    # no version: judged by the newest known build
    assert codes(check(runtime="vllm", driver_branch="575")) == ["driver-too-old-for-runtime"]


def test_vllm_refuses_volta() -> None:
    problems = check(gpu_generation="volta", runtime="vllm", runtime_version="0.11.0")
    assert codes(problems) == ["runtime-unsupported-gpu"]
    assert "vllm 0.11.0" in problems[0].message and "volta" in problems[0].message


def test_ollama_needs_driver_550() -> None:
    (problem,) = check(runtime="ollama", runtime_version="0.12.3", driver_branch="535")
    assert problem.code == "driver-too-old-for-runtime"
    assert "535" in problem.message and "550" in problem.message and "ollama" in problem.message
    assert check(runtime="ollama", runtime_version="0.12.3", driver_branch="550") == []


def test_llama_cpp_cuda13_image_needs_580() -> None:
    assert codes(check(runtime="llama.cpp-cuda13", driver_branch="570")) == [
        "driver-too-old-for-runtime"
    ]
    assert check(runtime="llama.cpp-cuda", driver_branch="570") == []


def test_debian_12_with_branch_550_pin_is_refused_without_the_vendor_repo() -> None:
    (problem,) = check(distro="debian-12", driver_branch="550")
    assert problem.code == "branch-not-in-distro"
    assert "debian-12" in problem.message and "535" in problem.message and "550" in problem.message
    assert "vendor_repo" in problem.hint
    assert check(VENDOR_REPO, distro="debian-12", driver_branch="550") == []


def test_debian_12_cannot_drive_blackwell_from_its_own_archive() -> None:
    assert codes(check(distro="debian-12", gpu_generation="blackwell")) == [
        "distro-too-old-for-gpu"
    ]
    assert check(distro="debian-13", gpu_generation="ada") == []


@pytest.mark.parametrize(
    "given",
    [
        {"gpu_generation": "ada", "driver_branch": "535", "kernel_module": "proprietary"},
        {
            "gpu_generation": "hopper",
            "driver_branch": "570",
            "kernel_module": "open",
            "runtime": "vllm",
            "runtime_version": "0.11.0",
        },
        {
            "gpu_generation": "ada",
            "driver_branch": "550",
            "kernel_module": "open",
            "runtime": "ollama",
            "runtime_version": "0.12.3",
            "distro": "debian-13",
        },
        {"gpu_generation": "volta", "driver_branch": "535", "kernel_module": "proprietary"},
        {"gpu_generation": "cdna3", "runtime": "llama.cpp-cuda"},
        {"distro": "debian-12", "driver_branch": "535.247.01"},
    ],
)
def test_good_combinations_have_no_problems(given: dict[str, str | None]) -> None:
    assert check(**given) == []


def test_nvidia_settings_on_an_amd_gpu_are_refused() -> None:
    assert codes(check(gpu_generation="cdna3", driver_branch="570")) == [
        "nvidia-driver-on-non-nvidia-gpu"
    ]


def test_unknown_names_are_problems_not_silence() -> None:
    problems = check(gpu_generation="kepler", runtime="tgi", distro="arch", kernel_module="closed")
    assert codes(problems) == [
        "unknown-kernel-module",
        "unknown-generation",
        "unknown-runtime",
        "unknown-distro",
    ]
    assert "volta" in problems[1].hint


def test_generation_for_pci_uses_the_gpu_catalog() -> None:
    assert generation_for_pci("0x10de", "0x2330") == "hopper"
    assert generation_for_pci("10DE", "1DB4") == "volta"
    assert generation_for_pci(0x1002, 0x74A1) == "cdna3"
    assert generation_for_pci("10de", "ffff") is None


def test_every_catalog_generation_is_known_to_the_gate() -> None:
    catalog = load_gpu_catalog()
    assert {str(e["generation"]) for e in catalog.values()} <= set(TABLE.generations)


def test_problems_are_frozen() -> None:
    (problem,) = check(gpu_generation="volta", kernel_module="open")
    with pytest.raises(AttributeError):
        problem.code = "x"  # type: ignore[misc]


MODULES = st.sampled_from([None, "open", "proprietary"])
BRANCHES = st.sampled_from([None, "470", "535", "550", "560", "570", "575", "580", "590"])


@given(
    gen=st.sampled_from([None, *TABLE.generations]),
    branch=BRANCHES,
    module=MODULES,
    runtime=st.sampled_from([None, *TABLE.runtimes]),
    version=st.sampled_from([None, "0.9.0", "0.11.0", "0.16.0", "0.30.1"]),
    distro=st.sampled_from([None, *TABLE.distro_branches]),
)
def test_every_problem_explains_itself(
    gen: str | None,
    branch: str | None,
    module: str | None,
    runtime: str | None,
    version: str | None,
    distro: str | None,
) -> None:
    problems = check(
        gpu_generation=gen,
        driver_branch=branch,
        kernel_module=module,
        runtime=runtime,
        runtime_version=version,
        distro=distro,
    )
    for p in problems:
        assert p.code and p.message and p.hint
    # A newer driver never creates a driver-age problem an older one did not have.
    if branch is not None and distro is None:
        newer = check(
            gpu_generation=gen,
            driver_branch="580",
            kernel_module=module,
            runtime=runtime,
            runtime_version=version,
        )
        assert not {c for c in codes(newer) if "too-old" in c}
