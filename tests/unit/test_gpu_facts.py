"""gpuforge.infra.gpu_facts against recorded sysfs/proc trees: what a user would see per host shape.

Run ``python3 tests/unit/test_gpu_facts.py --write-catalog`` after editing seeds/gpus.yml to
regenerate the catalog embedded in the module.
"""

from __future__ import annotations

import json
import os
import pprint
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

if not __package__:  # run as a script (--write-catalog): the checkout's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# The recorded trees' reader lives beside them (no pytest there: scripts use it too).
from tests.fixtures.gpu.trees import gather, gpu_facts_module, materialise

REPO = Path(__file__).resolve().parents[2]
MODULE_PATH = REPO / "plugins" / "modules" / "gpu_facts.py"
SEEDS = REPO / "seeds" / "gpus.yml"
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
BEGIN, END = "# BEGIN GENERATED CATALOG\n", "# END GENERATED CATALOG\n"


gf = gpu_facts_module()


def test_recorded_trees_have_no_colons_and_no_links() -> None:
    """ansible-test sanity stops on ':' in a path and refuses broken symbolic links."""
    paths = list(FIXTURES.rglob("*"))
    assert paths
    assert [p for p in paths if ":" in p.name] == []
    assert [p for p in paths if p.is_symlink()] == []
    device = materialise("hgx-h100-mig-open") / "sys/bus/pci/devices/0000:18:00.0"
    assert os.readlink(device / "driver") == "../../../../bus/pci/drivers/nvidia"


# --- the embedded catalog -------------------------------------------------------------------


def render_catalog() -> str:
    data = yaml.safe_load(SEEDS.read_text())
    # A hanging indent under "(": pep8 (ansible-test sanity) accepts it, unlike pprint's
    # continuation lines under "= {".
    body = pprint.pformat(data, width=96, sort_dicts=False).replace("\n", "\n    ")
    return f"GPU_CATALOG: Dict[str, Any] = (\n    {body})\n"


def test_embedded_catalog_equals_seeds_gpus_yml() -> None:
    assert yaml.safe_load(SEEDS.read_text()) == gf.GPU_CATALOG, (
        "seeds/gpus.yml and the module's GPU_CATALOG differ; run "
        "python3 tests/unit/test_gpu_facts.py --write-catalog"
    )


def test_catalog_entries_are_unique_sourced_and_typed() -> None:
    devices = gf.GPU_CATALOG["devices"]
    keys = [(d["vendor_id"], d["device_id"]) for d in devices]
    assert len(keys) == len(set(keys))
    generations = {"volta", "turing", "ampere", "ada", "hopper", "blackwell"}
    generations |= {"cdna1", "cdna2", "cdna3", "rdna3"}
    for d in devices:
        assert d["source"].strip(), d
        assert d["generation"] in generations, d
        assert d["kind"] in {"gpu", "nvswitch"}, d
        assert d["vendor_id"] in gf.GPU_CATALOG["vendors"], d
        if d["vendor_id"] == "0x10de" and d["kind"] == "gpu":
            assert d["compute_capability"], d
        if d["vendor_id"] == "0x1002":
            assert d["gfx_target"].startswith("gfx"), d


# --- machine shapes --------------------------------------------------------------------------


def test_no_gpu_host_reports_nothing_and_ignores_the_bmc_vga() -> None:
    facts = gather("no-gpu")
    assert facts["gpus"] == []
    assert (facts["gpu_count"], facts["nvidia_gpu_count"], facts["amd_gpu_count"]) == (0, 0, 0)
    assert facts["nvswitch_count"] == 0
    assert facts["modules_loaded"] == []
    assert facts["nouveau_loaded"] is False
    assert facts["nvidia_driver"] is None
    assert facts["amd"] is None
    assert facts["secure_boot"] == "unknown"
    assert facts["iommu"] is False
    assert facts["tools"] == {
        "nvidia_smi": False,
        "rocm_smi": False,
        "rocminfo": False,
        "mokutil": False,
    }


def test_rtx4090_with_proprietary_driver() -> None:
    facts = gather("rtx4090-proprietary")
    assert facts["gpu_count"] == facts["nvidia_gpu_count"] == 1  # the HDMI audio function is not
    (gpu,) = facts["gpus"]
    assert gpu["name"] == "GeForce RTX 4090"
    assert gpu["generation"] == "ada"
    assert (gpu["vendor_id"], gpu["device_id"]) == ("0x10de", "0x2684")
    assert gpu["pci_address"] == "0000:01:00.0"
    assert gpu["numa_node"] is None  # sysfs says -1 on a single-socket desktop
    assert gpu["driver"] == "nvidia"
    assert gpu["memory_mib"] == 24564
    assert gpu["compute_capability"] == "8.9"
    assert gpu["mig_mode"] is None
    assert gpu["persistence_mode"] == "disabled"
    assert facts["nvidia_driver"] == {
        "version": "535.230.02",
        "branch": "535",
        "kernel_module": "proprietary",
    }
    assert facts["modules_loaded"] == ["nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset"]
    assert facts["secure_boot"] == "disabled"  # from the efivars byte, no mokutil here
    assert facts["iommu"] is True


def test_hgx_h100_eight_gpus_four_nvswitches_mig_and_open_module() -> None:
    facts = gather("hgx-h100-mig-open")
    assert facts["gpu_count"] == facts["nvidia_gpu_count"] == 8
    assert facts["nvswitch_count"] == 4
    assert {g["name"] for g in facts["gpus"]} == {"H100 SXM5 80GB"}
    assert {g["generation"] for g in facts["gpus"]} == {"hopper"}
    assert all(g["mig_mode"] == "enabled" for g in facts["gpus"])
    assert all(g["persistence_mode"] == "enabled" for g in facts["gpus"])
    assert [g["numa_node"] for g in facts["gpus"]] == [0] * 4 + [1] * 4
    # nvidia-smi prints 00000000:2A:00.0; the merge still finds 0000:2a:00.0
    second = facts["gpus"][1]
    assert second["pci_address"] == "0000:2a:00.0"
    assert second["uuid"] == "GPU-00000001-7a1e-4c55-9d1e-0a6b3c0d4e01"
    assert second["memory_mib"] == 81559
    assert facts["nvidia_driver"] == {
        "version": "570.172.08",
        "branch": "570",
        "kernel_module": "open",
    }
    assert facts["secure_boot"] == "disabled"  # mokutil's answer
    assert facts["iommu"] is True
    assert facts["amd"] is None


def test_mi300x_host_with_rocminfo() -> None:
    facts = gather("mi300x-rocm")
    assert facts["gpu_count"] == facts["amd_gpu_count"] == 2
    assert facts["nvidia_gpu_count"] == 0
    assert {g["name"] for g in facts["gpus"]} == {"Instinct MI300X"}
    assert {g["generation"] for g in facts["gpus"]} == {"cdna3"}
    assert {g["driver"] for g in facts["gpus"]} == {"amdgpu"}
    assert {g["gfx_target"] for g in facts["gpus"]} == {"gfx942"}
    assert facts["amd"] == {"gfx_targets": ["gfx942"]}
    assert facts["modules_loaded"] == ["amdgpu"]
    assert facts["nvidia_driver"] is None


def test_mi300x_falls_back_to_rocm_smi_without_rocminfo() -> None:
    facts = gather("mi300x-rocm", without=("rocminfo",))
    assert facts["amd"] == {"gfx_targets": ["gfx942"]}
    assert facts["tools"]["rocminfo"] is False


def test_nouveau_loaded_and_secure_boot_on() -> None:
    facts = gather("nouveau-secureboot")
    assert facts["nouveau_loaded"] is True
    assert facts["modules_loaded"] == ["nouveau"]
    (gpu,) = facts["gpus"]
    assert (gpu["name"], gpu["generation"]) == ("GeForce RTX 3090", "ampere")
    assert gpu["driver"] == "nouveau"
    assert facts["nvidia_driver"] is None
    assert facts["secure_boot"] == "enabled"


# --- parsers ---------------------------------------------------------------------------------


def test_nvidia_version_banner_flavours() -> None:
    open_banner = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.163.01  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Tue Feb 25 2025\n"
    )
    prop_banner = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 2024\n"
    assert gf.parse_nvidia_version(open_banner) == {
        "version": "550.163.01",
        "branch": "550",
        "kernel_module": "open",
    }
    assert gf.parse_nvidia_version(prop_banner)["kernel_module"] == "proprietary"
    assert gf.parse_nvidia_version("GCC version: gcc 12\n") is None


def test_mokutil_wins_over_efivars_and_unsupported_falls_back(tmp_path: Path) -> None:
    efi = materialise("rtx4090-proprietary")  # efivars byte says disabled
    assert gf.secure_boot(str(efi), "SecureBoot enabled\n") == "enabled"
    assert gf.secure_boot(str(efi), "EFI variables are not supported on this system\n") == (
        "disabled"
    )
    assert gf.secure_boot(str(tmp_path), None) == "unknown"
    short = tmp_path / "sys/firmware/efi/efivars" / gf.SECURE_BOOT_VAR
    short.parent.mkdir(parents=True)
    short.write_bytes(b"\x06\x00")
    assert gf.secure_boot(str(tmp_path), None) == "unknown"


def test_nvidia_smi_rows_skip_junk_and_map_na() -> None:
    text = (
        "No devices were found\n"
        "0, GPU-a, NVIDIA T4, 15360, 7.5, [N/A], Enabled, 550.163.01, 00000000:3B:00.0\n"
    )
    (row,) = gf.parse_nvidia_smi_csv(text)
    assert row["pci_address"] == "0000:3b:00.0"
    assert row["mig_mode"] is None
    assert (row["memory_mib"], row["compute_capability"]) == (15360, "7.5")


@given(st.text())
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    assert set(gf.parse_proc_modules(text)) <= set(gf.WATCHED_MODULES)
    gf.parse_nvidia_version(text)
    gf.parse_nvidia_smi_csv(text)
    gf.parse_rocminfo(text)
    gf.parse_rocm_smi_json(text)


@given(st.lists(st.sampled_from([*gf.WATCHED_MODULES, "ext4", "nvidia_peermem", "kvm"])))
def test_proc_modules_reports_exactly_the_watched_ones(names: list[str]) -> None:
    text = "".join(f"{n} 16384 0 - Live 0x0000000000000000\n" for n in names)
    assert gf.parse_proc_modules(text) == [m for m in gf.WATCHED_MODULES if m in names]


# --- the module as Ansible runs it -----------------------------------------------------------


def test_module_runs_in_check_mode_and_sets_facts(tmp_path: Path) -> None:
    args = tmp_path / "args.json"
    root = str(materialise("hgx-h100-mig-open"))
    args.write_text(
        json.dumps(
            {"ANSIBLE_MODULE_ARGS": {"root": root, "use_tools": False, "_ansible_check_mode": True}}
        )
    )
    proc = subprocess.run(
        [sys.executable, str(MODULE_PATH), str(args)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["changed"] is False
    facts = result["ansible_facts"]["gpuforge_gpu"]
    assert facts["gpu_count"] == result["gpu_count"] == 8
    assert facts["nvswitch_count"] == 4
    assert facts["tools"]["nvidia_smi"] is False  # use_tools: false keeps the live host out


def _write_catalog() -> None:
    text = MODULE_PATH.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    MODULE_PATH.write_text(head + BEGIN + render_catalog() + END + tail)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-catalog"]:
        _write_catalog()
    else:
        sys.exit(pytest.main([__file__, *sys.argv[1:]]))
