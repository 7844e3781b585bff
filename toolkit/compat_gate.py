"""The compatibility gate over an inventory: each host's pinned choices, judged by compat.py.

A host is judged only on what its variables pin: ``gpuforge_gpu_generation`` (declared GPU
generation, e.g. ``hopper``), ``nvidia_driver_branch``, ``nvidia_driver_kernel_module``
(``auto`` pins nothing), ``nvidia_driver_source`` (``vendor`` lifts the distribution's branch
list), ``gpuforge_distro`` (``debian-13``...) and each runtime's version variable. Every
problem names both variables in conflict and the files that set them.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.compat import CompatTable, check_combination, load_compat
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


def host_compat_problems(host: str, hostvars: Mapping[str, SourcedValue],
                         table: CompatTable | None = None) -> list[Problem]:
    """Every compatibility conflict among the choices a host's variables pin."""
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
