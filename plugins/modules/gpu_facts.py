#!/usr/bin/python
# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Ansible module gpuforge.infra.gpu_facts: what GPUs a host has, read without any driver."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Report GPUs, NVSwitches, GPU drivers, Secure Boot and IOMMU state
version_added: "0.1.0"
author:
  - gpuforge maintainers (@gpuforge)
description:
  - Reads PCI sysfs, C(/proc/modules) and C(/proc/driver/nvidia/version) to report the host's
    GPUs (NVIDIA, AMD, Intel), NVSwitches, loaded GPU kernel modules and the NVIDIA driver
    version and kernel module flavour (open or proprietary). No GPU driver is needed.
  - Where the tools exist it also runs C(nvidia-smi), C(rocm-smi), C(rocminfo) and C(mokutil)
    read-only and merges what they say (UUID, memory, compute capability, MIG and persistence
    mode per NVIDIA GPU; gfx targets on AMD; Secure Boot state).
  - GPU names and generations come from a PCI id catalog embedded in the module (generated from
    C(seeds/gpus.yml) of the gpuforge repository), so the target needs only Python 3.
  - Never changes anything on the host.
options:
  root:
    description:
      - Directory to read C(sys/) and C(proc/) under. Tests point it at a recorded tree.
    type: path
    default: /
  gpu_catalog:
    description:
      - Path on the target to a catalog in the C(seeds/gpus.yml) format, replacing the
        embedded one. A C(.json) file needs only Python; YAML needs PyYAML on the target.
    type: path
  use_tools:
    description:
      - Run C(nvidia-smi), C(rocm-smi), C(rocminfo) and C(mokutil) when they are installed.
      - Set to V(false) with O(root) pointing at a recorded tree, so the live host's tools
        do not mix into the recorded facts.
    type: bool
    default: true
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  facts:
    description: Returns its results as facts under C(ansible_facts.gpuforge_gpu).
    support: full
notes:
  - A GPU bound to no driver, or to C(vfio-pci), is still reported; C(driver) says which.
  - NVSwitches are counted only when their PCI id is in the catalog (HGX A100 and HGX H100/H200
    baseboards). HGX B200 NVSwitches have no PCI id in pci.ids and are not counted.
  - Secure Boot comes from C(mokutil --sb-state); without mokutil, byte 4 of the UEFI
    C(SecureBoot) variable in efivarfs; otherwise C(unknown).
seealso:
  - name: PCI ID Repository
    description: Where the catalog's PCI ids were checked.
    link: https://pci-ids.ucw.cz/
"""

EXAMPLES = r"""
- name: Gather GPU facts
  gpuforge.infra.gpu_facts:

- name: Refuse hosts that still load nouveau
  ansible.builtin.assert:
    that: not ansible_facts['gpuforge_gpu']['nouveau_loaded']
    fail_msg: nouveau is loaded; blacklist it and reboot before installing the NVIDIA driver

- name: Read a recorded sysfs/proc tree without touching the live host's tools
  gpuforge.infra.gpu_facts:
    root: /srv/recorded/hgx-h100
    use_tools: false
  register: recorded
"""

RETURN = r"""
ansible_facts:
  description: The same dictionary as the top-level keys below, under C(gpuforge_gpu).
  returned: always
  type: dict
  contains:
    gpuforge_gpu:
      description: GPU facts of the host.
      type: dict
gpus:
  description: One entry per GPU (PCI class 0x0300, 0x0302 or 0x0380 of NVIDIA, AMD or Intel,
    and AMD's 0x1200 processing accelerators such as Instinct MI300X), sorted by PCI address.
  returned: always
  type: list
  elements: dict
  sample:
    - vendor: nvidia
      vendor_id: "0x10de"
      device_id: "0x2330"
      name: H100 SXM5 80GB
      generation: hopper
      pci_address: "0000:18:00.0"
      numa_node: 0
      driver: nvidia
      uuid: GPU-6f1e4c1a-2b0e-4c55-9d1e-0a6b3c0d4e01
      memory_mib: 81559
      compute_capability: "9.0"
      mig_mode: enabled
      persistence_mode: enabled
  contains:
    vendor:
      description: nvidia, amd or intel.
      type: str
    vendor_id:
      description: PCI vendor id, lower-case hex with 0x.
      type: str
    device_id:
      description: PCI device id, lower-case hex with 0x.
      type: str
    name:
      description: Product name from the catalog, else nvidia-smi's name, else null.
      type: str
    generation:
      description: volta, turing, ampere, ada, hopper, blackwell, cdna1, cdna2, cdna3, rdna3;
        null when the catalog does not know the device.
      type: str
    pci_address:
      description: Domain:bus:device.function, lower case.
      type: str
    numa_node:
      description: NUMA node of the device; null when the kernel reports none (-1).
      type: int
    driver:
      description: Kernel driver bound to the device (nvidia, nouveau, amdgpu, vfio-pci...);
        null when none.
      type: str
    uuid:
      description: GPU UUID (nvidia-smi only).
      type: str
    memory_mib:
      description: Total memory in MiB (nvidia-smi only).
      type: int
    compute_capability:
      description: CUDA compute capability; from nvidia-smi, else the catalog.
      type: str
    mig_mode:
      description: enabled or disabled; null when the GPU has no MIG (nvidia-smi only).
      type: str
    persistence_mode:
      description: enabled or disabled (nvidia-smi only).
      type: str
    gfx_target:
      description: AMD LLVM target from the catalog, such as gfx942.
      type: str
gpu_count:
  description: Number of GPUs.
  returned: always
  type: int
nvidia_gpu_count:
  description: Number of NVIDIA GPUs.
  returned: always
  type: int
amd_gpu_count:
  description: Number of AMD GPUs.
  returned: always
  type: int
nvswitch_count:
  description: Number of NVSwitches found on the PCI bus.
  returned: always
  type: int
modules_loaded:
  description: Loaded modules among nvidia, nvidia_uvm, nvidia_drm, nvidia_modeset, nouveau,
    amdgpu.
  returned: always
  type: list
  elements: str
  sample: [nvidia, nvidia_uvm, nvidia_modeset]
nouveau_loaded:
  description: Whether nouveau is loaded.
  returned: always
  type: bool
nvidia_driver:
  description: The loaded NVIDIA driver, or null when none is loaded.
  returned: always
  type: dict
  sample: {version: 550.163.01, branch: "550", kernel_module: open}
  contains:
    version:
      description: Driver version.
      type: str
    branch:
      description: Leading number of the version.
      type: str
    kernel_module:
      description: open or proprietary; null when only nvidia-smi was available.
      type: str
amd:
  description: AMD details when rocminfo or rocm-smi answered, else null.
  returned: always
  type: dict
  sample: {gfx_targets: [gfx942]}
secure_boot:
  description: enabled, disabled or unknown.
  returned: always
  type: str
iommu:
  description: Whether the kernel registered an IOMMU (C(/sys/class/iommu) has entries).
  returned: always
  type: bool
tools:
  description: Which tools were found on the host.
  returned: always
  type: dict
  sample: {nvidia_smi: true, rocm_smi: false, rocminfo: false, mokutil: true}
"""

import csv
import json
import os
import re
from typing import Any, Callable, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule

VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}
GPU_CLASSES = (0x0300, 0x0302, 0x0380)
# AMD Instinct cards (MI210 and later) enumerate as "Processing accelerators" (0x1200), not as a
# display class. Only AMD's are taken: Intel NPUs share the class but are not GPUs.
AMD_ACCELERATOR_CLASS = 0x1200
BRIDGE_OTHER_CLASS = 0x0680
WATCHED_MODULES = ("nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nouveau", "amdgpu")
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
NVIDIA_SMI_QUERY = (
    "index,uuid,name,memory.total,compute_cap,mig.mode.current,persistence_mode,"
    "driver_version,pci.bus_id"
)
TOOLS = {
    "nvidia_smi": (
        "nvidia-smi",
        ["--query-gpu=" + NVIDIA_SMI_QUERY, "--format=csv,noheader,nounits"],
    ),
    "rocm_smi": ("rocm-smi", ["--showproductname", "--json"]),
    "rocminfo": ("rocminfo", []),
    "mokutil": ("mokutil", ["--sb-state"]),
}

Facts = Dict[str, Any]

# GPU_CATALOG is generated from seeds/gpus.yml; tests/unit/test_gpu_facts.py checks they match.
# BEGIN GENERATED CATALOG
GPU_CATALOG: Dict[str, Any] = (
    {'schema_version': 1,
     'vendors': {'0x10de': 'nvidia', '0x1002': 'amd', '0x8086': 'intel'},
     'devices': [{'vendor_id': '0x10de',
                  'device_id': '0x1db1',
                  'kind': 'gpu',
                  'name': 'V100 SXM2 16GB',
                  'generation': 'volta',
                  'compute_capability': '7.0',
                  'memory_gb': 16,
                  'source': "[pci.ids] 1db1 'GV100GL [Tesla V100 SXM2 16GB]'; [cuda-cc] V100 7.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x1db4',
                  'kind': 'gpu',
                  'name': 'V100 PCIe 16GB',
                  'generation': 'volta',
                  'compute_capability': '7.0',
                  'memory_gb': 16,
                  'source': "[pci.ids] 1db4 'GV100GL [Tesla V100 PCIe 16GB]'; [cuda-cc] V100 7.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x1db5',
                  'kind': 'gpu',
                  'name': 'V100 SXM2 32GB',
                  'generation': 'volta',
                  'compute_capability': '7.0',
                  'memory_gb': 32,
                  'source': "[pci.ids] 1db5 'GV100GL [Tesla V100 SXM2 32GB]'; [cuda-cc] V100 7.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x1db6',
                  'kind': 'gpu',
                  'name': 'V100 PCIe 32GB',
                  'generation': 'volta',
                  'compute_capability': '7.0',
                  'memory_gb': 32,
                  'source': "[pci.ids] 1db6 'GV100GL [Tesla V100 PCIe 32GB]'; [cuda-cc] V100 7.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x1df6',
                  'kind': 'gpu',
                  'name': 'V100S PCIe 32GB',
                  'generation': 'volta',
                  'compute_capability': '7.0',
                  'memory_gb': 32,
                  'source': "[pci.ids] 1df6 'GV100GL [Tesla V100S PCIe 32GB]'; [cuda-cc] V100 7.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x1eb8',
                  'kind': 'gpu',
                  'name': 'T4',
                  'generation': 'turing',
                  'compute_capability': '7.5',
                  'memory_gb': 16,
                  'source': "[pci.ids] 1eb8 'TU104GL [Tesla T4]'; [cuda-cc] T4 7.5"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x20b0',
                  'kind': 'gpu',
                  'name': 'A100 SXM4 40GB',
                  'generation': 'ampere',
                  'compute_capability': '8.0',
                  'memory_gb': 40,
                  'source': "[pci.ids] 20b0 'GA100 [A100 SXM4 40GB]'; [nv-open] 20B0 'NVIDIA "
                            "A100-SXM4-40GB'; [cuda-cc] A100 8.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x20f1',
                  'kind': 'gpu',
                  'name': 'A100 PCIe 40GB',
                  'generation': 'ampere',
                  'compute_capability': '8.0',
                  'memory_gb': 40,
                  'source': "[pci.ids] 20f1 'GA100 [A100 PCIe 40GB]'; [nv-open] 20F1 'NVIDIA "
                            "A100-PCIE-40GB'; [cuda-cc] A100 8.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x20b2',
                  'kind': 'gpu',
                  'name': 'A100 SXM4 80GB',
                  'generation': 'ampere',
                  'compute_capability': '8.0',
                  'memory_gb': 80,
                  'source': "[pci.ids] 20b2 'GA100 [A100 SXM4 80GB]'; [nv-open] 20B2 'NVIDIA "
                            "A100-SXM4-80GB'; [cuda-cc] A100 8.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x20b5',
                  'kind': 'gpu',
                  'name': 'A100 PCIe 80GB',
                  'generation': 'ampere',
                  'compute_capability': '8.0',
                  'memory_gb': 80,
                  'source': "[pci.ids] 20b5 'GA100 [A100 PCIe 80GB]'; [nv-open] 20B5 'NVIDIA A100 "
                            "80GB PCIe'; [cuda-cc] A100 8.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x20b7',
                  'kind': 'gpu',
                  'name': 'A30',
                  'generation': 'ampere',
                  'compute_capability': '8.0',
                  'memory_gb': 24,
                  'source': "[pci.ids] 20b7 'GA100GL [A30 PCIe]'; [nv-open] 20B7 'NVIDIA A30'; "
                            '[cuda-cc] A30 8.0'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2236',
                  'kind': 'gpu',
                  'name': 'A10',
                  'generation': 'ampere',
                  'compute_capability': '8.6',
                  'memory_gb': 24,
                  'source': "[pci.ids] 2236 'GA102GL [A10]'; [nv-open] 2236 'NVIDIA A10'; "
                            '[cuda-cc] A10 8.6'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2235',
                  'kind': 'gpu',
                  'name': 'A40',
                  'generation': 'ampere',
                  'compute_capability': '8.6',
                  'memory_gb': 48,
                  'source': "[pci.ids] 2235 'GA102GL [A40]'; [nv-open] 2235 'NVIDIA A40'; "
                            '[cuda-cc] A40 8.6'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2204',
                  'kind': 'gpu',
                  'name': 'GeForce RTX 3090',
                  'generation': 'ampere',
                  'compute_capability': '8.6',
                  'memory_gb': 24,
                  'source': "[pci.ids] 2204 'GA102 [GeForce RTX 3090]'; [nv-open] 2204; [cuda-cc] "
                            'RTX 3090 8.6'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2230',
                  'kind': 'gpu',
                  'name': 'RTX A6000',
                  'generation': 'ampere',
                  'compute_capability': '8.6',
                  'memory_gb': 48,
                  'source': "[pci.ids] 2230 'GA102GL [RTX A6000]'; [nv-open] 2230 'NVIDIA RTX "
                            "A6000'; [cuda-cc] RTX A6000 8.6"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x27b8',
                  'kind': 'gpu',
                  'name': 'L4',
                  'generation': 'ada',
                  'compute_capability': '8.9',
                  'memory_gb': 24,
                  'source': "[pci.ids] 27b8 'AD104GL [L4]'; [nv-open] 27B8 'NVIDIA L4'; [cuda-cc] "
                            'L4 8.9'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x26b5',
                  'kind': 'gpu',
                  'name': 'L40',
                  'generation': 'ada',
                  'compute_capability': '8.9',
                  'memory_gb': 48,
                  'source': "[pci.ids] 26b5 'AD102GL [L40]'; [nv-open] 26B5 'NVIDIA L40'; "
                            '[cuda-cc] L40 8.9'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x26b9',
                  'kind': 'gpu',
                  'name': 'L40S',
                  'generation': 'ada',
                  'compute_capability': '8.9',
                  'memory_gb': 48,
                  'source': "[pci.ids] 26b9 'AD102GL [L40S]'; [nv-open] 26B9 'NVIDIA L40S'; "
                            '[cuda-cc] L40S 8.9'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2684',
                  'kind': 'gpu',
                  'name': 'GeForce RTX 4090',
                  'generation': 'ada',
                  'compute_capability': '8.9',
                  'memory_gb': 24,
                  'source': "[pci.ids] 2684 'AD102 [GeForce RTX 4090]'; [nv-open] 2684; [cuda-cc] "
                            'RTX 4090 8.9'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x26b1',
                  'kind': 'gpu',
                  'name': 'RTX 6000 Ada Generation',
                  'generation': 'ada',
                  'compute_capability': '8.9',
                  'memory_gb': 48,
                  'source': "[pci.ids] 26b1 'AD102GL [RTX 6000 Ada Generation]'; [nv-open] 26B1; "
                            '[cuda-cc] RTX 6000 Ada 8.9'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2330',
                  'kind': 'gpu',
                  'name': 'H100 SXM5 80GB',
                  'generation': 'hopper',
                  'compute_capability': '9.0',
                  'memory_gb': 80,
                  'source': "[pci.ids] 2330 'GH100 [H100 SXM5 80GB]'; [nv-open] 2330 'NVIDIA H100 "
                            "80GB HBM3'; [cuda-cc] H100 9.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2331',
                  'kind': 'gpu',
                  'name': 'H100 PCIe',
                  'generation': 'hopper',
                  'compute_capability': '9.0',
                  'memory_gb': 80,
                  'source': "[pci.ids] 2331 'GH100 [H100 PCIe]'; [nv-open] 2331 'NVIDIA H100 "
                            "PCIe'; [cuda-cc] H100 9.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2321',
                  'kind': 'gpu',
                  'name': 'H100 NVL',
                  'generation': 'hopper',
                  'compute_capability': '9.0',
                  'memory_gb': 94,
                  'source': "[pci.ids] 2321 'GH100 [H100L 94GB]'; [nv-open] 2321 'NVIDIA H100 "
                            "NVL'; [cuda-cc] H100 9.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2335',
                  'kind': 'gpu',
                  'name': 'H200 SXM 141GB',
                  'generation': 'hopper',
                  'compute_capability': '9.0',
                  'memory_gb': 141,
                  'source': "[pci.ids] 2335 'GH100 [H200 SXM 141GB]'; [nv-open] 2335 'NVIDIA "
                            "H200'; [cuda-cc] H200 9.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x233b',
                  'kind': 'gpu',
                  'name': 'H200 NVL',
                  'generation': 'hopper',
                  'compute_capability': '9.0',
                  'memory_gb': 141,
                  'source': "[pci.ids] 233b 'GH100 [H200 NVL]'; [cuda-cc] H200 9.0"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x2901',
                  'kind': 'gpu',
                  'name': 'B200',
                  'generation': 'blackwell',
                  'compute_capability': '10.0',
                  'memory_gb': None,
                  'source': "[pci.ids] 2901 'GB100 [B200]'; [cuda-cc] B200 10.0; memory varies by "
                            'SKU, left null'},
                 {'vendor_id': '0x10de',
                  'device_id': '0x1af1',
                  'kind': 'nvswitch',
                  'name': 'A100 NVSwitch',
                  'generation': 'ampere',
                  'compute_capability': None,
                  'memory_gb': None,
                  'source': "[pci.ids] 1af1 'GA100 [A100 NVSwitch]'"},
                 {'vendor_id': '0x10de',
                  'device_id': '0x22a3',
                  'kind': 'nvswitch',
                  'name': 'H100 NVSwitch',
                  'generation': 'hopper',
                  'compute_capability': None,
                  'memory_gb': None,
                  'source': "[pci.ids] 22a3 'GH100 [H100 NVSwitch]' (also on HGX H200 baseboards)"},
                 {'vendor_id': '0x1002',
                  'device_id': '0x738c',
                  'kind': 'gpu',
                  'name': 'Instinct MI100',
                  'generation': 'cdna1',
                  'gfx_target': 'gfx908',
                  'memory_gb': 32,
                  'source': "[pci.ids] 738c 'Arcturus GL-XL [Instinct MI100]'; [rocm] MI100 CDNA "
                            'gfx908 32 GiB'},
                 {'vendor_id': '0x1002',
                  'device_id': '0x740f',
                  'kind': 'gpu',
                  'name': 'Instinct MI210',
                  'generation': 'cdna2',
                  'gfx_target': 'gfx90a',
                  'memory_gb': 64,
                  'source': "[pci.ids] 740f 'Aldebaran/MI200 [Instinct MI210]'; [rocm] MI210 CDNA2 "
                            'gfx90a 64 GiB'},
                 {'vendor_id': '0x1002',
                  'device_id': '0x7408',
                  'kind': 'gpu',
                  'name': 'Instinct MI250X',
                  'generation': 'cdna2',
                  'gfx_target': 'gfx90a',
                  'memory_gb': 128,
                  'source': "[pci.ids] 7408 'Aldebaran/MI200 [Instinct MI250X]'; [rocm] MI250X "
                            'CDNA2 gfx90a 128 GiB'},
                 {'vendor_id': '0x1002',
                  'device_id': '0x740c',
                  'kind': 'gpu',
                  'name': 'Instinct MI250X/MI250',
                  'generation': 'cdna2',
                  'gfx_target': 'gfx90a',
                  'memory_gb': 128,
                  'source': "[pci.ids] 740c 'Aldebaran/MI200 [Instinct MI250X/MI250]'; [rocm] "
                            'MI250/MI250X CDNA2 gfx90a 128 GiB'},
                 {'vendor_id': '0x1002',
                  'device_id': '0x74a1',
                  'kind': 'gpu',
                  'name': 'Instinct MI300X',
                  'generation': 'cdna3',
                  'gfx_target': 'gfx942',
                  'memory_gb': 192,
                  'source': "[pci.ids] 74a1 'Aqua Vanjaram [Instinct MI300X]'; [rocm] MI300X CDNA3 "
                            'gfx942 192 GiB'},
                 {'vendor_id': '0x1002',
                  'device_id': '0x744c',
                  'kind': 'gpu',
                  'name': 'Radeon RX 7900 XT/XTX/GRE',
                  'generation': 'rdna3',
                  'gfx_target': 'gfx1100',
                  'memory_gb': None,
                  'source': "[pci.ids] 744c 'Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]' "
                            '(one id, several memory sizes); [rocm] RX 7900 XTX RDNA3 gfx1100'},
                 {'vendor_id': '0x1002',
                  'device_id': '0x7448',
                  'kind': 'gpu',
                  'name': 'Radeon PRO W7900',
                  'generation': 'rdna3',
                  'gfx_target': 'gfx1100',
                  'memory_gb': 48,
                  'source': "[pci.ids] 7448 'Navi 31 [Radeon Pro W7900]'; [rocm] Radeon PRO W7900 "
                            'RDNA3 gfx1100 48 GiB'}]})
# END GENERATED CATALOG


def catalog_index(catalog: Dict[str, Any]) -> Dict[tuple, Dict[str, Any]]:
    """Catalog entries keyed by (vendor_id, device_id), both '0x....' lower case."""
    return {
        (_hex_id(d["vendor_id"]), _hex_id(d["device_id"])): d for d in catalog.get("devices", [])
    }


def _hex_id(value: str) -> str:
    return "0x%04x" % int(str(value).strip(), 16)


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _read_int(path: str) -> Optional[int]:
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _norm_bus_id(bus_id: str) -> str:
    """'00000000:18:00.0' (nvidia-smi) or '0000:18:00.0' (sysfs) -> '0000:18:00.0'."""
    parts = bus_id.strip().lower().split(":")
    if len(parts) == 3:
        parts[0] = parts[0][-4:].rjust(4, "0")
    elif len(parts) == 2:
        parts.insert(0, "0000")
    return ":".join(parts)


def scan_pci(root: str, catalog: Dict[tuple, Dict[str, Any]]) -> tuple:
    """(gpus, nvswitches) found under <root>/sys/bus/pci/devices, sorted by PCI address."""
    base = os.path.join(root, "sys", "bus", "pci", "devices")
    try:
        addresses = sorted(os.listdir(base))
    except OSError:
        return [], []
    gpus: List[Facts] = []
    nvswitches: List[Facts] = []
    for address in addresses:
        dev = os.path.join(base, address)
        vendor_raw, device_raw, class_raw = (
            _read(os.path.join(dev, name)) for name in ("vendor", "device", "class")
        )
        if not (vendor_raw and device_raw and class_raw):
            continue
        vendor_id, device_id = _hex_id(vendor_raw), _hex_id(device_raw)
        vendor = VENDORS.get(vendor_id)
        pci_class = int(class_raw.strip(), 16) >> 8
        entry = catalog.get((vendor_id, device_id), {})
        if vendor is None:
            continue
        numa = _read_int(os.path.join(dev, "numa_node"))
        driver_link = os.path.join(dev, "driver")
        driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
        record: Facts = {
            "vendor": vendor,
            "vendor_id": vendor_id,
            "device_id": device_id,
            "name": entry.get("name"),
            "generation": entry.get("generation"),
            "pci_address": address.lower(),
            "numa_node": numa if numa is not None and numa >= 0 else None,
            "driver": driver,
        }
        if pci_class in GPU_CLASSES or (pci_class == AMD_ACCELERATOR_CLASS and vendor == "amd"):
            if entry.get("compute_capability"):
                record["compute_capability"] = entry["compute_capability"]
            if entry.get("gfx_target"):
                record["gfx_target"] = entry["gfx_target"]
            gpus.append(record)
        elif pci_class == BRIDGE_OTHER_CLASS and entry.get("kind") == "nvswitch":
            nvswitches.append(record)
    return gpus, nvswitches


def parse_proc_modules(text: str) -> List[str]:
    """The watched GPU modules that /proc/modules lists, in WATCHED_MODULES order."""
    loaded = {line.split(None, 1)[0] for line in text.splitlines() if line.strip()}
    return [name for name in WATCHED_MODULES if name in loaded]


def parse_nvidia_version(text: str) -> Optional[Facts]:
    """/proc/driver/nvidia/version -> {version, branch, kernel_module}; None if unrecognised."""
    for line in text.splitlines():
        if not line.startswith("NVRM version:"):
            continue
        match = re.search(r"\s(\d{3,}\.\d+(?:\.\d+)?)\s", line + " ")
        if not match:
            return None
        version = match.group(1)
        return {
            "version": version,
            "branch": version.split(".")[0],
            "kernel_module": "open" if "Open Kernel Module" in line else "proprietary",
        }
    return None


def _na(value: str) -> Optional[str]:
    value = value.strip()
    return None if value in ("", "N/A", "[N/A]", "[Not Supported]") else value


def parse_nvidia_smi_csv(text: str) -> List[Facts]:
    """Rows of `nvidia-smi --query-gpu=<NVIDIA_SMI_QUERY> --format=csv,noheader,nounits`."""
    rows: List[Facts] = []
    for fields in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(fields) != 9:
            continue
        index, uuid, name, memory, cc, mig, persistence, driver, bus_id = (_na(f) for f in fields)
        rows.append(
            {
                "index": int(index) if index and index.isdigit() else None,
                "uuid": uuid,
                "name": name,
                "memory_mib": int(memory) if memory and memory.isdigit() else None,
                "compute_capability": cc,
                "mig_mode": mig.lower() if mig else None,
                "persistence_mode": persistence.lower() if persistence else None,
                "driver_version": driver,
                "pci_address": _norm_bus_id(bus_id) if bus_id else None,
            }
        )
    return rows


def parse_rocminfo(text: str) -> List[str]:
    """gfx targets of the GPU agents rocminfo lists (its 'Name: gfx942' lines), sorted."""
    return sorted(set(re.findall(r"^\s*Name:\s+(gfx[0-9a-f]+)\s*$", text, re.MULTILINE)))


def parse_rocm_smi_json(text: str) -> List[str]:
    """gfx targets from `rocm-smi --showproductname --json` ('GFX Version' per card)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    found = set()
    for card in data.values() if isinstance(data, dict) else []:
        if isinstance(card, dict):
            for key, value in card.items():
                if key.lower().startswith("gfx version") and str(value).startswith("gfx"):
                    found.add(str(value).strip())
    return sorted(found)


def secure_boot(root: str, mokutil_output: Optional[str]) -> str:
    """enabled, disabled or unknown: mokutil's answer first, else the efivars byte."""
    if mokutil_output:
        lowered = mokutil_output.lower()
        if "secureboot enabled" in lowered:
            return "enabled"
        if "secureboot disabled" in lowered:
            return "disabled"
    path = os.path.join(root, "sys", "firmware", "efi", "efivars", SECURE_BOOT_VAR)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return "unknown"
    if len(data) < 5:
        return "unknown"
    return "enabled" if data[4] == 1 else "disabled"


def iommu_present(root: str) -> bool:
    try:
        return bool(os.listdir(os.path.join(root, "sys", "class", "iommu")))
    except OSError:
        return False


def summarise(
    gpus: List[Facts],
    nvswitches: List[Facts],
    modules: List[str],
    nvidia_driver: Optional[Facts],
    smi_rows: List[Facts],
    gfx_targets: Optional[List[str]],
    secure_boot_state: str,
    iommu: bool,
    tools: Dict[str, bool],
) -> Facts:
    """Merge the pieces into the facts dictionary the module returns."""
    by_address = {row["pci_address"]: row for row in smi_rows if row.get("pci_address")}
    merged: List[Facts] = []
    for gpu in gpus:
        gpu = dict(gpu)
        row = by_address.get(gpu["pci_address"])
        if row:
            for key in ("uuid", "memory_mib", "mig_mode", "persistence_mode"):
                gpu[key] = row[key]
            if row.get("compute_capability"):
                gpu["compute_capability"] = row["compute_capability"]
            if not gpu.get("name"):
                gpu["name"] = row.get("name")
        merged.append(gpu)
    if nvidia_driver is None and smi_rows and smi_rows[0].get("driver_version"):
        version = smi_rows[0]["driver_version"]
        nvidia_driver = {"version": version, "branch": version.split(".")[0], "kernel_module": None}
    return {
        "gpus": merged,
        "gpu_count": len(merged),
        "nvidia_gpu_count": sum(1 for g in merged if g["vendor"] == "nvidia"),
        "amd_gpu_count": sum(1 for g in merged if g["vendor"] == "amd"),
        "nvswitch_count": len(nvswitches),
        "modules_loaded": modules,
        "nouveau_loaded": "nouveau" in modules,
        "nvidia_driver": nvidia_driver,
        "amd": {"gfx_targets": gfx_targets} if gfx_targets else None,
        "secure_boot": secure_boot_state,
        "iommu": iommu,
        "tools": tools,
    }


def gather(
    root: str,
    catalog: Dict[str, Any],
    run_tool: Callable[[str], Optional[str]],
    has_tool: Callable[[str], bool],
) -> Facts:
    """Facts of the host under ``root``; run_tool(key) gives a TOOLS command's output or None."""
    gpus, nvswitches = scan_pci(root, catalog_index(catalog))
    modules = parse_proc_modules(_read(os.path.join(root, "proc", "modules")) or "")
    version_text = _read(os.path.join(root, "proc", "driver", "nvidia", "version"))
    nvidia_driver = parse_nvidia_version(version_text) if version_text else None
    tools = {key: has_tool(key) for key in TOOLS}
    smi_out = run_tool("nvidia_smi") if tools["nvidia_smi"] else None
    smi_rows = parse_nvidia_smi_csv(smi_out) if smi_out else []
    gfx: List[str] = []
    if tools["rocminfo"]:
        gfx = parse_rocminfo(run_tool("rocminfo") or "")
    if not gfx and tools["rocm_smi"]:
        gfx = parse_rocm_smi_json(run_tool("rocm_smi") or "")
    mokutil_out = run_tool("mokutil") if tools["mokutil"] else None
    return summarise(
        gpus,
        nvswitches,
        modules,
        nvidia_driver,
        smi_rows,
        gfx or None,
        secure_boot(root, mokutil_out),
        iommu_present(root),
        tools,
    )


def load_catalog_file(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        return json.loads(text)
    import yaml  # only when a YAML catalog is asked for; not needed otherwise

    return yaml.safe_load(text)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "gpu_catalog": {"type": "path"},
            "use_tools": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    catalog = GPU_CATALOG
    if module.params["gpu_catalog"]:
        try:
            catalog = load_catalog_file(module.params["gpu_catalog"])
        except ImportError:
            module.fail_json(msg="gpu_catalog is YAML but PyYAML is not on the target; give JSON")
        except (OSError, ValueError) as exc:
            module.fail_json(msg="cannot read gpu_catalog: %s" % exc)

    paths: Dict[str, Optional[str]] = {}

    def has_tool(key: str) -> bool:
        if not module.params["use_tools"]:
            return False
        paths[key] = module.get_bin_path(TOOLS[key][0])
        return paths[key] is not None

    def run_tool(key: str) -> Optional[str]:
        binary = paths.get(key)
        if not binary:
            return None
        rc, out, err = module.run_command([binary] + TOOLS[key][1])
        if rc != 0 and key != "mokutil":
            module.warn("%s exited %d: %s" % (TOOLS[key][0], rc, (err or out).strip()[:200]))
            return None
        return out or err

    facts = gather(module.params["root"], catalog, run_tool, has_tool)
    module.exit_json(changed=False, ansible_facts={"gpuforge_gpu": facts}, **facts)


if __name__ == "__main__":
    main()
