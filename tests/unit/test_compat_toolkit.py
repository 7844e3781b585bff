"""The compatibility gate knows which CUDA toolkit builds llama.cpp for which GPU architecture
and refuses a host whose toolkit cannot build for its GPUs (exit 3, naming host, GPU and
toolkit) before any host is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.gpu.trees import gather
from tests.unit.test_check_compat import sv
from toolkit.cli.app import main
from toolkit.compat import (
    capabilities_of_generation,
    capability,
    load_compat,
    load_gpu_catalog,
    toolkit_problems,
)
from toolkit.compat_gate import build_toolkit_problems, host_compat_problems

TABLE = load_compat()


@pytest.mark.parametrize(("archs", "toolkit", "codes"), [
    (["90"], "11.8", ["toolkit-too-old-for-gpu"]),   # Hopper: CUDA >= 12 (measured, 11.8 fails)
    (["90"], "12.4", []),
    (["90"], "13.0", []),
    (["100"], "12.4", ["toolkit-too-old-for-gpu"]),  # Blackwell: >= 12.8
    (["100", "120"], "12.8", []),
    (["80"], "11.0", []),                            # Ampere sm_80: >= 11.0
    (["80"], "10.2", ["toolkit-too-old-for-gpu"]),
    (["86"], "11.0", ["toolkit-too-old-for-gpu"]),   # sm_86: >= 11.1
    (["70"], "13.0", ["toolkit-too-new-for-gpu"]),   # Volta left CUDA 13
    (["70"], "12.9", []),
    (["80", "90"], "11.8", ["toolkit-too-old-for-gpu"]),
    (["95"], "12.4", ["unknown-cuda-architecture"]),
    (["sm90x"], "12.4", ["unknown-cuda-architecture"]),
])
def test_toolkit_against_architectures(archs: list[str], toolkit: str, codes: list[str]) -> None:
    assert [p.code for p in toolkit_problems(TABLE, architectures=archs, toolkit=toolkit)] == codes


def test_the_refusal_names_the_architecture_and_both_toolkits() -> None:
    [problem] = toolkit_problems(TABLE, architectures=["90"], toolkit="11.8")
    assert problem.message == ("CUDA 11.8 cannot build for sm_90 (compute capability 9.0): "
                               "it needs CUDA >= 12.0")


@pytest.mark.parametrize(("text", "cc"), [("90", "9.0"), ("sm_90", "9.0"), ("9.0", "9.0"),
                                          ("120", "12.0"), ("86", "8.6"), ("90-real", "9.0")])
def test_capability_spellings(text: str, cc: str) -> None:
    assert capability(text) == cc


def test_every_nvidia_gpu_of_the_catalog_has_a_toolkit_entry() -> None:
    missing = {str(e["compute_capability"]) for e in load_gpu_catalog().values()
               if e.get("compute_capability")} - set(TABLE.cuda_architectures)
    assert missing == set()
    assert capabilities_of_generation("hopper") == ["9.0"]
    assert capabilities_of_generation("ampere") == ["8.0", "8.6"]


def test_debian_12_toolkit_refuses_a_declared_hopper_host() -> None:
    [problem] = host_compat_problems("h100-a", sv(gpuforge_gpu_generation="hopper",
                                                  gpuforge_distro="debian-12"))
    assert problem.host == "h100-a"
    assert problem.variable == "gpuforge_distro vs gpuforge_gpu_generation"
    assert "GPU hopper" in problem.message and "CUDA toolkit 11.8" in problem.message
    assert "cannot build for sm_90" in problem.message
    assert host_compat_problems("h100-a", sv(gpuforge_gpu_generation="hopper",
                                             gpuforge_distro="debian-13")) == []


def test_a_pinned_toolkit_and_pinned_architectures_are_judged() -> None:
    [problem] = host_compat_problems("b200", sv(llama_cpp_cuda_architectures="90;100",
                                                llama_cpp_cuda_version="12.4"))
    assert problem.variable == "llama_cpp_cuda_version vs llama_cpp_cuda_architectures"
    assert "sm_100" in problem.message and "sm_90" not in problem.message.split(":")[-2]
    assert host_compat_problems("b200", sv(llama_cpp_cuda_architectures=["90", "100"],
                                           llama_cpp_cuda_version="12.8")) == []


def test_recorded_facts_of_an_h100_host_decide_when_nothing_is_declared() -> None:
    facts = gather("hgx-h100-mig-open")
    [problem] = build_toolkit_problems("gpu1", sv(gpuforge_distro="debian-12"), TABLE, facts)
    assert "recorded gpu facts" in problem.message and "H100" in problem.message
    assert build_toolkit_problems("gpu1", sv(gpuforge_distro="debian-13"), TABLE, facts) == []


@pytest.mark.parametrize("pins", [
    {"llama_cpp_backend": "cpu"}, {"gpuforge_runtime": "vllm"},
    {"llama_cpp_install_method": "release"}, {},
])
def test_hosts_that_build_no_cuda_llama_cpp_pass(pins: dict[str, str]) -> None:
    base = {"gpuforge_gpu_generation": "hopper", "gpuforge_distro": "debian-12"} if pins else {}
    assert build_toolkit_problems("h", sv(**base, **pins), TABLE) == []


def test_gpuforge_check_exits_3_before_touching_a_host(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    # 192.0.2.1 (TEST-NET-1) is never reached: the gate decides from the inventory alone.
    inv.write_text("all:\n  hosts:\n    h100-a:\n      ansible_host: 192.0.2.1\n"
                   "      gpuforge_gpu_generation: hopper\n      gpuforge_distro: debian-12\n",
                   encoding="utf-8")
    assert main(["check", "-i", str(inv), "--profile", "llm-server"]) == 3
    err = capsys.readouterr().err
    assert "h100-a: gpuforge_distro vs gpuforge_gpu_generation" in err
    assert "CUDA 11.8 cannot build for sm_90" in err


def test_gpuforge_check_reads_the_gpus_it_recorded_of_a_host(
        tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Ansible's fact cache (jsonfile) as an earlier `gpuforge facts` left it: an HGX H100 host.
    cache = tmp_path / "cache"
    (cache / "facts").mkdir(parents=True)
    (cache / "facts" / "gpu1").write_text(json.dumps(
        {"gpuforge_gpu": gather("hgx-h100-mig-open"), "ansible_memtotal_mb": 2063000}))
    monkeypatch.setenv("GPUFORGE_CACHE_DIR", str(cache))
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    gpu1:\n      gpuforge_distro: debian-12\n",
                   encoding="utf-8")
    assert main(["check", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert "gpu1: gpuforge_distro vs recorded gpu facts" in err
    assert "H100" in err and "CUDA 11.8 cannot build for sm_90" in err


def test_a_profile_that_builds_no_llama_cpp_is_not_judged_on_the_toolkit(
        tmp_path: Path, state_dir: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    h100-a:\n      gpuforge_gpu_generation: hopper\n"
                   "      gpuforge_distro: debian-12\n", encoding="utf-8")
    assert main(["check", "-i", str(inv), "--profile", "gpu-node"]) == 0
