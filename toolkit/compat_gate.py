"""The compatibility gate over an inventory: each host's pinned choices, judged by compat.py.

A host is judged only on what its variables pin: ``gpuforge_gpu_generation`` (declared GPU
generation, e.g. ``hopper``), ``nvidia_driver_branch``, ``nvidia_driver_kernel_module``
(``auto`` pins nothing), ``nvidia_driver_source`` (``vendor`` lifts the distribution's branch
list), ``gpuforge_distro`` (``debian-13``...) and each runtime's version variable. Every
problem names both variables in conflict and the files that set them.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.compat import (
    CompatTable,
    capabilities_of_generation,
    check_combination,
    load_compat,
    toolkit_problems,
)
from toolkit.inventory import SourcedValue
from toolkit.specs import Problem

GENERATION_VAR = "gpuforge_gpu_generation"
DISTRO_VAR = "gpuforge_distro"
BRANCH_VAR = "nvidia_driver_branch"
MODULE_VAR = "nvidia_driver_kernel_module"
SOURCE_VAR = "nvidia_driver_source"
# Runtime (a name in seeds/compat.yml `runtimes`) -> the variable that pins its version.
RUNTIME_VERSION_VARS = {"vllm": "vllm_version", "ollama": "ollama_version"}

# Which two variables each kind of conflict sets against each other.
_SIDES: dict[str, tuple[str, ...]] = {
    "open-module-unsupported": (MODULE_VAR, GENERATION_VAR),
    "proprietary-module-unsupported": (MODULE_VAR, GENERATION_VAR),
    "driver-too-old-for-gpu": (BRANCH_VAR, GENERATION_VAR),
    "nvidia-driver-on-non-nvidia-gpu": (BRANCH_VAR, GENERATION_VAR),
    "branch-not-in-distro": (BRANCH_VAR, DISTRO_VAR),
    "distro-too-old-for-gpu": (DISTRO_VAR, GENERATION_VAR),
    "unknown-generation": (GENERATION_VAR,),
    "unknown-distro": (DISTRO_VAR,),
    "unknown-kernel-module": (MODULE_VAR,),
}


def _value(hostvars: Mapping[str, SourcedValue], name: str) -> str | None:
    entry = hostvars.get(name)
    if entry is None or entry.value in (None, ""):
        return None
    return str(entry.value)


TOOLKIT_VAR = "llama_cpp_cuda_version"
ARCHS_VAR = "llama_cpp_cuda_architectures"


def _architectures(value: object) -> list[str]:
    """A pinned llama_cpp_cuda_architectures: a list, or '80;90' / '80,90'."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [a for a in str(value).replace(",", ";").split(";") if a.strip()]


def build_toolkit_problems(host: str, hostvars: Mapping[str, SourcedValue],
                           table: CompatTable | None = None,
                           recorded: Mapping[str, object] | None = None) -> list[Problem]:
    """A llama.cpp CUDA build the host's toolkit cannot make for its GPUs.

    The GPUs: ``llama_cpp_cuda_architectures`` when pinned, else the compute capabilities of
    ``recorded`` gpu facts, else those seeds/gpus.yml lists for ``gpuforge_gpu_generation``.
    The toolkit: ``llama_cpp_cuda_version`` when pinned, else the one ``gpuforge_distro``
    carries. Hosts that do not build llama.cpp for CUDA, or where either side is unknown, pass.
    """
    if (_value(hostvars, "gpuforge_runtime") or "llama_cpp") != "llama_cpp" \
            or _value(hostvars, "llama_cpp_install_method") == "release" \
            or (_value(hostvars, "llama_cpp_backend") or "cuda") != "cuda":
        return []
    table = table or load_compat()
    generation = _value(hostvars, GENERATION_VAR)
    pinned = hostvars.get(ARCHS_VAR)
    gpus = [g for g in (recorded or {}).get("gpus") or []  # type: ignore[attr-defined]
            if isinstance(g, Mapping) and g.get("vendor") == "nvidia"]
    if pinned is not None and pinned.value not in (None, "", []):
        archs, gpu_side = _architectures(pinned.value), ARCHS_VAR
    elif gpus:
        archs = sorted({str(g["compute_capability"]) for g in gpus
                        if g.get("compute_capability")})
        gpu_side = "recorded gpu facts (" + ", ".join(
            sorted({str(g.get("name") or g.get("device_id")) for g in gpus})) + ")"
    elif generation and table.generations.get(generation) is not None \
            and table.generations[generation].vendor == "nvidia":
        archs, gpu_side = capabilities_of_generation(generation), GENERATION_VAR
    else:
        return []
    distro = _value(hostvars, DISTRO_VAR)
    toolkit = _value(hostvars, TOOLKIT_VAR)
    tool_side = TOOLKIT_VAR
    if toolkit is None and distro is not None:
        toolkit, tool_side = table.distro_cuda_toolkit.get(distro), DISTRO_VAR
    if toolkit is None or not archs:
        return []
    sides = [s for s in (gpu_side, tool_side) if s in hostvars]
    sources = "; ".join(dict.fromkeys(hostvars[s].source for s in sides))
    gpus_text = f"{generation} " if gpu_side == GENERATION_VAR and generation else ""
    tool_text = f"{toolkit} ({tool_side}={_value(hostvars, tool_side)!r})"
    return [Problem(host=host, variable=f"{tool_side} vs {gpu_side.split(' (')[0]}",
                    message=f"incompatible (GPU {gpus_text}{gpu_side}: {', '.join(archs)}; CUDA "
                            f"toolkit {tool_text}): {cp.message}; hint: {cp.hint}",
                    source=sources)
            for cp in toolkit_problems(table, architectures=archs, toolkit=toolkit)]


def host_compat_problems(host: str, hostvars: Mapping[str, SourcedValue],
                         table: CompatTable | None = None,
                         recorded: Mapping[str, object] | None = None,
                         builds_llama_cpp: bool = True) -> list[Problem]:
    """Every compatibility conflict among the choices a host's variables pin (and, where the
    profile builds llama.cpp, its CUDA toolkit against the GPUs its recorded facts show)."""
    toolkit = build_toolkit_problems(host, hostvars, table, recorded) if builds_llama_cpp else []
    return _choice_problems(host, hostvars, table) + toolkit


def _choice_problems(host: str, hostvars: Mapping[str, SourcedValue],
                     table: CompatTable | None = None) -> list[Problem]:
    generation = _value(hostvars, GENERATION_VAR)
    branch = _value(hostvars, BRANCH_VAR)
    module = _value(hostvars, MODULE_VAR)
    module = None if module == "auto" else module
    distro = _value(hostvars, DISTRO_VAR)
    runtimes = {rt: v for rt, var in RUNTIME_VERSION_VARS.items()
                if (v := _value(hostvars, var)) is not None}
    if not any((generation, branch, module, distro, runtimes)):
        return []
    table = table or load_compat()
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    pairs: list[tuple[str | None, str | None]] = list(runtimes.items()) or [(None, None)]
    for runtime, version in pairs:
        for cp in check_combination(
                table, gpu_generation=generation, driver_branch=branch, kernel_module=module,
                runtime=runtime, runtime_version=version, distro=distro,
                vendor_repo=_value(hostvars, SOURCE_VAR) == "vendor"):
            key = (cp.message, cp.hint)
            if key in found:
                continue
            sides = _SIDES.get(cp.code)
            if sides is None:  # runtime conflicts: the branch (or GPU) against the runtime pin
                pin = RUNTIME_VERSION_VARS[runtime] if runtime else "runtime"
                sides = ((GENERATION_VAR if cp.code == "runtime-unsupported-gpu" else BRANCH_VAR),
                         pin)
            found[key] = sides
    problems = []
    for (message, hint), sides in found.items():
        named = [s for s in sides if s in hostvars]
        sources = list(dict.fromkeys(hostvars[s].source for s in named))
        values = ", ".join(f"{s}={hostvars[s].value!r}" for s in named)
        problems.append(Problem(
            host=host, variable=" vs ".join(named or sides),
            message=f"incompatible ({values}): {message}; hint: {hint}",
            source="; ".join(sources)))
    return problems
