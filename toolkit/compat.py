"""Compatibility gate: refuse a GPU/driver/module/runtime/distro mix before a host is touched.

The facts live in ``seeds/compat.yml`` and ``seeds/gpus.yml``; this module only loads and judges
them. ``check_combination`` is pure: it returns every problem it finds, each naming both sides of
the conflict and a hint, and an empty list when the combination is fine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from toolkit.paths import seeds_dir

KERNEL_MODULES = ("open", "proprietary")


@dataclass(frozen=True)
class CompatProblem:
    code: str
    message: str
    hint: str


@dataclass(frozen=True)
class Generation:
    name: str
    vendor: str
    min_driver_branch: int | None
    open_kernel_module: str | None  # unsupported | supported | required; None for AMD
    recommended_kernel_module: str | None


@dataclass(frozen=True)
class RuntimeBuild:
    from_version: str
    cuda: str | None
    min_driver_branch: int | None


@dataclass(frozen=True)
class Runtime:
    name: str
    builds: tuple[RuntimeBuild, ...]
    unsupported_generations: tuple[str, ...]


@dataclass(frozen=True)
class CudaArchitecture:
    capability: str  # '9.0'
    min_cuda: str
    max_cuda: str | None


@dataclass(frozen=True)
class CompatTable:
    generations: Mapping[str, Generation]
    cuda_by_branch: Mapping[int, str]
    runtimes: Mapping[str, Runtime]
    distro_branches: Mapping[str, tuple[int, ...]]
    # compute capability ('9.0') -> the toolkits that build for it
    cuda_architectures: Mapping[str, CudaArchitecture] = field(default_factory=dict)
    # distribution -> the CUDA toolkit its own archive carries ('debian-13' -> '12.4')
    distro_cuda_toolkit: Mapping[str, str] = field(default_factory=dict)


GpuCatalog = Mapping[tuple[str, str], Mapping[str, Any]]


def _version_key(text: str) -> tuple[int, ...]:
    """'0.11.0' -> (0, 11, 0); 'b6123' -> (6123,); '12.8' -> (12, 8)."""
    parts = re.findall(r"\d+", text)
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in parts)


def _load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_compat(path: Path | str | None = None) -> CompatTable:
    """Read seeds/compat.yml (or ``path``) into a CompatTable: parsed once per file version
    (`check` asks for it once per host, and parsing it was most of a no-op run's check)."""
    file = Path(path) if path else seeds_dir() / "compat.yml"
    return _load_compat(str(file), file.stat().st_mtime_ns, file.stat().st_size)


@lru_cache(maxsize=8)
def _load_compat(file: str, mtime_ns: int, size: int) -> CompatTable:
    data = _load_yaml(Path(file))
    generations = {
        name: Generation(
            name=name,
            vendor=str(g["vendor"]),
            min_driver_branch=g.get("min_driver_branch"),
            open_kernel_module=g.get("open_kernel_module"),
            recommended_kernel_module=g.get("recommended_kernel_module"),
        )
        for name, g in data["generations"].items()
    }
    cuda_by_branch = {int(e["branch"]): str(e["max_cuda"]) for e in data["cuda_by_driver_branch"]}
    runtimes = {
        name: Runtime(
            name=name,
            builds=tuple(
                sorted(
                    (
                        RuntimeBuild(
                            from_version=str(b["from_version"]),
                            cuda=str(b["cuda"]) if b.get("cuda") else None,
                            min_driver_branch=b.get("min_driver_branch"),
                        )
                        for b in r["builds"]
                    ),
                    key=lambda b: _version_key(b.from_version),
                )
            ),
            unsupported_generations=tuple(r.get("unsupported_generations") or ()),
        )
        for name, r in data["runtimes"].items()
    }
    distros = {
        name: tuple(int(b) for b in d["nvidia_driver_branches"])
        for name, d in data["distros"].items()
    }
    architectures = {
        str(cc): CudaArchitecture(str(cc), str(a["min_cuda"]),
                                  str(a["max_cuda"]) if a.get("max_cuda") else None)
        for cc, a in (data.get("cuda_architectures") or {}).items()
    }
    toolkits = {name: str(d["cuda_toolkit"]) for name, d in data["distros"].items()
                if d.get("cuda_toolkit")}
    return CompatTable(generations, cuda_by_branch, runtimes, distros, architectures, toolkits)


def _norm_id(value: str | int) -> str:
    """'10DE', '0x10de' or 0x10de -> '0x10de'."""
    number = value if isinstance(value, int) else int(str(value), 16)
    return f"0x{number:04x}"


def load_gpu_catalog(path: Path | str | None = None) -> GpuCatalog:
    """Read seeds/gpus.yml (or ``path``), keyed by (vendor_id, device_id) as '0x....' strings."""
    data = _load_yaml(Path(path) if path else seeds_dir() / "gpus.yml")
    return {(_norm_id(d["vendor_id"]), _norm_id(d["device_id"])): d for d in data["devices"]}


@lru_cache(maxsize=1)
def _default_catalog() -> GpuCatalog:
    return load_gpu_catalog()


def generation_for_pci(
    vendor_id: str | int, device_id: str | int, catalog: GpuCatalog | None = None
) -> str | None:
    """The generation of a PCI id ('volta', 'cdna3', ...), or None when the catalog lacks it."""
    entry = (catalog if catalog is not None else _default_catalog()).get(
        (_norm_id(vendor_id), _norm_id(device_id))
    )
    return str(entry["generation"]) if entry else None


def _max_cuda(table: CompatTable, branch: int) -> str | None:
    known = [b for b in table.cuda_by_branch if b <= branch]
    return table.cuda_by_branch[max(known)] if known else None


def _branch_for_cuda(table: CompatTable, cuda: str) -> int | None:
    fits = [b for b, c in table.cuda_by_branch.items() if _version_key(c) >= _version_key(cuda)]
    return min(fits) if fits else None


def _pick_build(runtime: Runtime, version: str | None) -> RuntimeBuild | None:
    if version is None:
        return runtime.builds[-1] if runtime.builds else None
    key = _version_key(version)
    applicable = [b for b in runtime.builds if _version_key(b.from_version) <= key]
    return applicable[-1] if applicable else None


def _unknown(kind: str, value: str, known: Mapping[str, object]) -> CompatProblem:
    return CompatProblem(
        code=f"unknown-{kind}",
        message=f"{kind} '{value}' is not in seeds/compat.yml, so it cannot be checked",
        hint=f"use one of: {', '.join(sorted(known))}; or add it with a source",
    )


def _check_generation(
    gen: Generation, branch: int | None, kernel_module: str | None
) -> list[CompatProblem]:
    problems: list[CompatProblem] = []
    if gen.vendor != "nvidia":
        if branch is not None or kernel_module is not None:
            problems.append(
                CompatProblem(
                    "nvidia-driver-on-non-nvidia-gpu",
                    f"an NVIDIA driver setting was given, but {gen.name} is a {gen.vendor} GPU "
                    "generation",
                    "drop the NVIDIA driver branch and kernel module for this host",
                )
            )
        return problems
    if kernel_module == "open" and gen.open_kernel_module == "unsupported":
        problems.append(
            CompatProblem(
                "open-module-unsupported",
                f"kernel module 'open' does not support {gen.name} GPUs; {gen.name} needs the "
                "proprietary module",
                "set the kernel module to 'proprietary' for this host",
            )
        )
    if kernel_module == "proprietary" and gen.open_kernel_module == "required":
        problems.append(
            CompatProblem(
                "proprietary-module-unsupported",
                f"kernel module 'proprietary' does not support {gen.name} GPUs; {gen.name} "
                "requires the open module",
                "set the kernel module to 'open' for this host",
            )
        )
    if branch is not None and gen.min_driver_branch and branch < gen.min_driver_branch:
        problems.append(
            CompatProblem(
                "driver-too-old-for-gpu",
                f"driver branch {branch} is older than {gen.min_driver_branch}, the first branch "
                f"that supports {gen.name} GPUs",
                f"pin driver branch {gen.min_driver_branch} or newer",
            )
        )
    return problems


def _check_runtime(
    table: CompatTable,
    rt: Runtime,
    version: str | None,
    gen: Generation | None,
    branch: int | None,
) -> list[CompatProblem]:
    label = f"{rt.name} {version}" if version else f"{rt.name} (newest known build)"
    problems: list[CompatProblem] = []
    if gen is not None and gen.name in rt.unsupported_generations:
        problems.append(
            CompatProblem(
                "runtime-unsupported-gpu",
                f"{label} does not run on {gen.name} GPUs",
                f"pick another runtime for {gen.name} hosts (for example llama.cpp or ollama)",
            )
        )
    build = _pick_build(rt, version)
    if build is None or branch is None or (gen is not None and gen.vendor != "nvidia"):
        return problems
    if build.cuda is not None:
        needed = _branch_for_cuda(table, build.cuda)
        have = _max_cuda(table, branch)
        if needed is not None and branch < needed:
            supports = (
                f"supports CUDA up to {have}" if have else "is older than every listed branch"
            )
            problems.append(
                CompatProblem(
                    "driver-too-old-for-runtime",
                    f"driver branch {branch} {supports}, but {label} needs CUDA {build.cuda} "
                    f"(driver >= {needed})",
                    f"pin driver branch {needed} or newer, or pick a {rt.name} build made for "
                    f"CUDA {have or 'an older release'}",
                )
            )
    if build.min_driver_branch is not None and branch < build.min_driver_branch:
        problems.append(
            CompatProblem(
                "driver-too-old-for-runtime",
                f"driver branch {branch} is older than {build.min_driver_branch}, which {label} "
                "needs",
                f"pin driver branch {build.min_driver_branch} or newer",
            )
        )
    return problems


def _check_distro(
    distro: str,
    branches: tuple[int, ...],
    branch: int | None,
    gen: Generation | None,
) -> list[CompatProblem]:
    carried = ", ".join(str(b) for b in branches)
    if branch is not None and branch not in branches:
        return [
            CompatProblem(
                "branch-not-in-distro",
                f"{distro} carries NVIDIA driver branch {carried} only, but branch {branch} was "
                "requested",
                f"pin branch {carried}, or enable NVIDIA's CUDA repository (vendor_repo) to get "
                f"branch {branch}",
            )
        ]
    if branch is None and gen is not None and gen.min_driver_branch and branches:
        newest = max(branches)
        if gen.vendor == "nvidia" and newest < gen.min_driver_branch:
            return [
                CompatProblem(
                    "distro-too-old-for-gpu",
                    f"{distro} carries NVIDIA driver branch {carried} only, but {gen.name} GPUs "
                    f"need branch {gen.min_driver_branch} or newer",
                    "enable NVIDIA's CUDA repository (vendor_repo) or use a newer distribution",
                )
            ]
    return []


def check_combination(
    table: CompatTable,
    *,
    gpu_generation: str | None,
    driver_branch: str | None,
    kernel_module: str | None,
    runtime: str | None,
    runtime_version: str | None,
    distro: str | None,
    vendor_repo: bool = False,
) -> list[CompatProblem]:
    """Every conflict between the given choices; an empty list means go.

    ``driver_branch`` may be a branch ('550') or a full version ('550.163.01').
    ``vendor_repo`` says NVIDIA's CUDA repository is configured, so the distribution's own
    branch list does not limit the choice. Unknown names are problems too: a gate that cannot
    judge a choice should not wave it through.
    """
    problems: list[CompatProblem] = []
    branch = _version_key(driver_branch)[0] if driver_branch else None
    if kernel_module is not None and kernel_module not in KERNEL_MODULES:
        problems.append(
            CompatProblem(
                "unknown-kernel-module",
                f"kernel module '{kernel_module}' is neither 'open' nor 'proprietary'",
                "use 'open' or 'proprietary'",
            )
        )
        kernel_module = None

    gen: Generation | None = None
    if gpu_generation is not None:
        gen = table.generations.get(gpu_generation)
        if gen is None:
            problems.append(_unknown("generation", gpu_generation, table.generations))
        else:
            problems += _check_generation(gen, branch, kernel_module)

    if runtime is not None:
        rt = table.runtimes.get(runtime)
        if rt is None:
            problems.append(_unknown("runtime", runtime, table.runtimes))
        else:
            problems += _check_runtime(table, rt, runtime_version, gen, branch)

    if distro is not None:
        branches = table.distro_branches.get(distro)
        if branches is None:
            problems.append(_unknown("distro", distro, table.distro_branches))
        elif not vendor_repo:
            problems += _check_distro(distro, branches, branch, gen)
    return problems


def capability(architecture: str) -> str:
    """'90', 'sm_90', '9.0' -> '9.0'; '120' -> '12.0'; '86' -> '8.6'."""
    text = architecture.strip().lower().removeprefix("sm_").removesuffix("-real")
    if re.fullmatch(r"\d+\.\d", text):
        return text
    if not re.fullmatch(r"\d{2,3}", text):
        raise ValueError(f"not a CUDA architecture: {architecture!r}")
    return f"{text[:-1]}.{text[-1]}"


def capabilities_of_generation(generation: str, catalog: GpuCatalog | None = None) -> list[str]:
    """Every compute capability seeds/gpus.yml lists for a generation, sorted."""
    entries = (catalog if catalog is not None else _default_catalog()).values()
    found = {str(e["compute_capability"]) for e in entries
             if e.get("generation") == generation and e.get("compute_capability")}
    return sorted(found, key=_version_key)


def toolkit_problems(table: CompatTable, *, architectures: list[str],
                     toolkit: str) -> list[CompatProblem]:
    """Every architecture the CUDA ``toolkit`` cannot build for; empty means go."""
    problems: list[CompatProblem] = []
    have = _version_key(toolkit)
    for arch in architectures:
        try:
            cc = capability(arch)
        except ValueError as exc:
            problems.append(CompatProblem("unknown-cuda-architecture", str(exc),
                                          "use compute capabilities such as 90 or 9.0"))
            continue
        entry = table.cuda_architectures.get(cc)
        sm = "sm_" + cc.replace(".", "")
        if entry is None:
            problems.append(_unknown("cuda-architecture", cc, table.cuda_architectures))
        elif have < _version_key(entry.min_cuda):
            problems.append(CompatProblem(
                "toolkit-too-old-for-gpu",
                f"CUDA {toolkit} cannot build for {sm} (compute capability {cc}): it needs CUDA "
                f">= {entry.min_cuda}",
                f"use a CUDA {entry.min_cuda} or newer toolkit (Debian 13's 12.4, or NVIDIA's "
                "repository: llama_cpp_cuda_repo, llama_cpp_cuda_packages, "
                "llama_cpp_cuda_version), or leave this GPU's architecture out"))
        elif entry.max_cuda and have[:2] > _version_key(entry.max_cuda)[:2]:
            problems.append(CompatProblem(
                "toolkit-too-new-for-gpu",
                f"CUDA {toolkit} no longer builds for {sm} (compute capability {cc}): the last "
                f"toolkit that does is CUDA {entry.max_cuda}",
                f"use a CUDA {entry.max_cuda} or older toolkit for this GPU"))
    return problems
