# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Filters gpuforge.infra.gpu_backend and gpuforge.infra.cuda_architectures.

They turn the facts of ``gpuforge.infra.gpu_facts`` (``ansible_facts['gpuforge_gpu']``) into
what a model runtime is built and run with, so a GPU host serves on its GPU unless the
inventory says otherwise:

- an NVIDIA GPU in the facts: ``cuda``; the CUDA architectures are the hosts' compute
  capabilities (``9.0`` -> ``90``);
- else an AMD GPU: ``rocm``; the targets are the gfx targets of the facts;
- else (no GPU, or no facts at all): ``cpu``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# Built when the facts name no compute capability (a cuda build forced on a host without
# NVIDIA facts, or a builder for several hosts): Ampere, Ada and Hopper (H100/H200).
DEFAULT_CUDA_ARCHITECTURES = ("80", "86", "89", "90")


def _facts(facts):
    if facts is None or facts == "":
        return {}
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            "gpu_backend expects ansible_facts['gpuforge_gpu'] (a dictionary), got "
            f"{type(facts).__name__}")
    return facts


def _gpus(facts, vendor):
    return [g for g in facts.get("gpus") or [] if isinstance(g, dict) and g.get("vendor") == vendor]


def gpu_backend(facts):
    """cuda, rocm or cpu for the host whose gpu_facts are ``facts``."""
    facts = _facts(facts)
    if facts.get("nvidia_gpu_count") or _gpus(facts, "nvidia"):
        return "cuda"
    if facts.get("amd_gpu_count") or _gpus(facts, "amd"):
        return "rocm"
    return "cpu"


def cuda_architectures(facts, default=DEFAULT_CUDA_ARCHITECTURES):
    """The CUDA architectures (CMAKE_CUDA_ARCHITECTURES items, '90') of the host's NVIDIA GPUs,
    sorted and unique; ``default`` when the facts name none."""
    found = set()
    for gpu in _gpus(_facts(facts), "nvidia"):
        capability = str(gpu.get("compute_capability") or "")
        major, _dot, minor = capability.partition(".")
        if major.isdigit() and minor.isdigit():
            found.add(f"{int(major)}{int(minor)}")
    if not found:
        return [str(a) for a in default]
    return sorted(found, key=int)


def amdgpu_targets(facts):
    """The gfx targets (gfx942) of the host's AMD GPUs, sorted and unique."""
    facts = _facts(facts)
    found = {str(g["gfx_target"]) for g in _gpus(facts, "amd") if g.get("gfx_target")}
    found.update((facts.get("amd") or {}).get("gfx_targets") or [])
    return sorted(found)


class FilterModule:
    def filters(self):
        return {
            "gpu_backend": gpu_backend,
            "cuda_architectures": cuda_architectures,
            "amdgpu_targets": amdgpu_targets,
        }
