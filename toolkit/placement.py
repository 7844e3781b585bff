"""Model placement: which host serves which model, from recorded hardware facts.

Pure functions over plain data (no Ansible, no I/O) at the core: ``place`` takes hosts (GPU
count and memory, host memory) and the models wanted (the catalog's RAM/VRAM needs, replicas,
optional pins) and returns an assignment, or a refusal naming host, model and shortfall.

Rules:
- a model with ``vram_mb > 0`` needs GPU memory: it goes on one GPU when it fits there, else on
  as many whole free GPUs of one host as its VRAM needs (tensor parallel); every replica also
  needs ``ram_mb`` of host memory;
- a model with ``vram_mb == 0`` serves on CPU and needs ``ram_mb`` of host memory;
- the replicas of one model go to distinct hosts, each on the candidate with the most room
  (spread); single-replica models go on the candidate with the least room that fits (pack);
- a model pinned to hosts (inventory) is only placed there, and first;
- a host whose facts are unknown takes nothing (it is listed as such).

``placement_from_inventory`` reads those inputs from resolved inventory variables:
``gpuforge_gpu_count``, ``gpuforge_gpu_memory_mib`` (per GPU), ``gpuforge_memory_mb`` (host
memory), ``gpuforge_memory_reserved_mb`` (kept for the system, default 1024) and, on any host,
``gpuforge_placement`` (list of {model, replicas, hosts}). Without ``gpuforge_placement`` each
host's ``model_store_models`` is taken as pinned to that host, so the fit is still checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RESERVED_MB = 1024
FACT_VARS = ("gpuforge_gpu_count", "gpuforge_gpu_memory_mib", "gpuforge_memory_mb")
WANTED_VAR = "gpuforge_placement"


@dataclass(frozen=True)
class HostFacts:
    name: str
    memory_mb: int | None  # None: unknown, the host takes nothing
    gpu_memory_mib: tuple[int, ...] = ()
    reserved_mb: int = DEFAULT_RESERVED_MB
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelNeed:
    name: str
    ram_mb: int
    vram_mb: int
    replicas: int = 1
    hosts: tuple[str, ...] = ()  # pinned: only these hosts


@dataclass(frozen=True)
class Assignment:
    model: str
    host: str
    replica: int
    gpus: tuple[int, ...]  # indexes of the host's GPUs used; () on CPU
    ram_mb: int
    vram_mb: int


@dataclass(frozen=True)
class Refusal:
    model: str
    host: str | None
    message: str


@dataclass
class _Room:
    ram: int
    gpus: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    hosts: tuple[HostFacts, ...]
    assignments: tuple[Assignment, ...]
    refusals: tuple[Refusal, ...]

    @property
    def ok(self) -> bool:
        return not self.refusals

    def pools(self) -> dict[str, list[str]]:
        """model -> the hosts serving it (the front gateway's pools)."""
        out: dict[str, list[str]] = {}
        for a in self.assignments:
            out.setdefault(a.model, [])
            if a.host not in out[a.model]:
                out[a.model].append(a.host)
        return out

    def models_by_host(self) -> dict[str, list[str]]:
        """host -> the models placed on it (every placement host; [] where none is)."""
        return {h.name: sorted({a.model for a in self.assignments if a.host == h.name})
                for h in self.hosts}

    def to_dict(self) -> dict[str, Any]:
        used: dict[str, tuple[int, int]] = {}
        for a in self.assignments:
            ram, vram = used.get(a.host, (0, 0))
            used[a.host] = (ram + a.ram_mb, vram + a.vram_mb)
        placed = self.models_by_host()
        return {
            "ok": self.ok,
            "hosts": {h.name: {
                "memory_mb": h.memory_mb, "reserved_mb": h.reserved_mb,
                "gpu_count": len(h.gpu_memory_mib), "gpu_memory_mib": list(h.gpu_memory_mib),
                "ram_used_mb": used.get(h.name, (0, 0))[0],
                "vram_used_mib": used.get(h.name, (0, 0))[1],
                "facts": "unknown" if h.memory_mb is None else "recorded",
                "models": placed[h.name],
            } for h in self.hosts},
            "assignments": [{"model": a.model, "host": a.host, "replica": a.replica,
                             "gpus": list(a.gpus), "ram_mb": a.ram_mb, "vram_mb": a.vram_mb}
                            for a in self.assignments],
            "pools": self.pools(),
            "refusals": [{"model": r.model, "host": r.host, "message": r.message}
                         for r in self.refusals],
        }


def _gpu_slots(room: _Room, vram: int) -> tuple[int, ...] | None:
    """GPUs for one replica: the fullest single GPU it fits on, else whole free GPUs."""
    single = [(free, i) for i, free in enumerate(room.gpus) if free >= vram]
    if single:
        return (min(single)[1],)
    whole = [i for i, free in enumerate(room.gpus) if free > 0]
    total = 0
    chosen: list[int] = []
    for i in sorted(whole, key=lambda i: -room.gpus[i]):
        chosen.append(i)
        total += room.gpus[i]
        if total >= vram:
            return tuple(sorted(chosen))
    return None


def _shortfall(host: HostFacts, room: _Room, need: ModelNeed) -> str:
    """Why `need` does not fit on `host` now, in numbers."""
    if host.memory_mb is None:
        return (f"host {host.name}: its memory is unknown (set {', '.join(FACT_VARS)} "
                "or record them with `gpuforge facts`)")
    parts = []
    if need.vram_mb > 0:
        if not host.gpu_memory_mib:
            parts.append(f"needs {need.vram_mb} MiB of GPU memory and has no GPU")
        elif _gpu_slots(room, need.vram_mb) is None:
            free = sum(room.gpus)
            parts.append(f"needs {need.vram_mb} MiB of GPU memory, {free} MiB free "
                         f"(short {need.vram_mb - free} MiB)")
    if room.ram < need.ram_mb:
        parts.append(f"needs {need.ram_mb} MB of host memory, {max(room.ram, 0)} MB free "
                     f"(short {need.ram_mb - max(room.ram, 0)} MB)")
    return f"host {host.name}: model {need.name} " + "; ".join(parts or ["does not fit"])


def _fits(room: _Room, need: ModelNeed) -> tuple[int, ...] | None:
    """The GPUs one replica would use (() for CPU), or None when it does not fit."""
    if room.ram < need.ram_mb:
        return None
    if need.vram_mb <= 0:
        return ()
    return _gpu_slots(room, need.vram_mb)


def _room_key(room: _Room, need: ModelNeed) -> int:
    return sum(room.gpus) if need.vram_mb > 0 else room.ram


def place(hosts: list[HostFacts], models: list[ModelNeed]) -> Placement:
    """Assign every replica of every model to a host, or refuse naming the shortfall."""
    by_name = {h.name: h for h in hosts}
    rooms = {h.name: _Room(ram=(h.memory_mb or 0) - h.reserved_mb, gpus=list(h.gpu_memory_mib))
             for h in hosts}
    assignments: list[Assignment] = []
    refusals: list[Refusal] = []
    # Pinned first, then spread models, then the largest: the hard constraints take room first.
    order = sorted(models, key=lambda m: (not m.hosts, m.replicas <= 1, -m.vram_mb, -m.ram_mb,
                                          m.name))
    for need in order:
        unknown_pins = [h for h in need.hosts if h not in by_name]
        if unknown_pins:
            refusals.append(Refusal(need.name, unknown_pins[0],
                                    f"model {need.name} is pinned to {', '.join(unknown_pins)}, "
                                    "not a host of this inventory"))
            continue
        candidates = [by_name[h] for h in need.hosts] if need.hosts else list(hosts)
        if need.replicas > len(candidates):
            refusals.append(Refusal(
                need.name, None,
                f"model {need.name} wants {need.replicas} replicas on distinct hosts; "
                f"{len(candidates)} host(s) can take it "
                f"({', '.join(h.name for h in candidates) or 'none'})"))
            continue
        taken: set[str] = set()
        for replica in range(1, need.replicas + 1):
            fitting = [(h, slots) for h in candidates if h.name not in taken
                       and h.memory_mb is not None
                       and (slots := _fits(rooms[h.name], need)) is not None]
            if not fitting:
                rest = [h for h in candidates if h.name not in taken]
                # Name the host that came closest (most room), or the pinned one.
                closest = max(rest, key=lambda h: (h.memory_mb is not None,
                                                   _room_key(rooms[h.name], need)))
                refusals.append(Refusal(
                    need.name, closest.name,
                    f"{_shortfall(closest, rooms[closest.name], need)} "
                    f"(replica {replica} of {need.replicas})"))
                break
            spread = need.replicas > 1
            host, slots = (max if spread else min)(
                fitting, key=lambda hs: (_room_key(rooms[hs[0].name], need), hs[0].name))
            room = rooms[host.name]
            room.ram -= need.ram_mb
            left = need.vram_mb
            for i in slots:
                use = min(left, room.gpus[i]) if len(slots) == 1 else room.gpus[i]
                room.gpus[i] -= use
                left -= use
            taken.add(host.name)
            assignments.append(Assignment(need.name, host.name, replica, slots, need.ram_mb,
                                          need.vram_mb))
    assignments.sort(key=lambda a: (a.model, a.replica))
    return Placement(tuple(hosts), tuple(assignments), tuple(refusals))


# --- Reading an inventory (resolved variables) ---------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class PlacementInputError(ValueError):
    """A placement variable that cannot be read (names the variable and host)."""


def host_facts(host: str, hostvars: Mapping[str, Any], groups: tuple[str, ...] = (),
               recorded: Mapping[str, Any] | None = None) -> HostFacts:
    """A host's facts from its variables; `recorded` (one host of `gpuforge facts --json`, or
    of Ansible's fact cache) supplies GPU count and per-GPU memory, and `memtotal_mb` the host
    memory, where the variables do not."""
    def number(name: str) -> int | None:
        if name not in hostvars or hostvars[name] in (None, ""):
            return None
        value = _int(hostvars[name])
        if value is None or value < 0:
            raise PlacementInputError(f"{host}: {name} must be a whole number >= 0 "
                                      f"(got {hostvars[name]!r})")
        return value

    count = number("gpuforge_gpu_count")
    per_gpu = number("gpuforge_gpu_memory_mib")
    gpus: tuple[int, ...] = ()
    if recorded and count is None:
        listed = [g for g in recorded.get("gpus") or [] if g.get("vendor") in ("nvidia", "amd")]
        gpus = tuple(int(per_gpu or g.get("memory_mib") or 0) for g in listed)
    elif count:
        if per_gpu is None:
            raise PlacementInputError(f"{host}: gpuforge_gpu_count is {count} but "
                                      "gpuforge_gpu_memory_mib (memory of one GPU) is not set")
        gpus = (per_gpu,) * count
    reserved = number("gpuforge_memory_reserved_mb")
    memory = number("gpuforge_memory_mb")
    if memory is None and recorded and _int(recorded.get("memtotal_mb")) is not None:
        memory = _int(recorded.get("memtotal_mb"))
    return HostFacts(name=host, memory_mb=memory, gpu_memory_mib=gpus,
                     reserved_mb=DEFAULT_RESERVED_MB if reserved is None else reserved,
                     groups=groups)


def wanted_models(hostvars: Mapping[str, Mapping[str, Any]],
                  catalog: Mapping[str, tuple[int, int]]) -> list[ModelNeed]:
    """The models to place: `gpuforge_placement` (the same on every host that sets it), else
    each host's `model_store_models` pinned to it. `catalog`: model -> (ram_mb, vram_mb)."""
    declared = {h: v[WANTED_VAR] for h, v in hostvars.items() if v.get(WANTED_VAR) is not None}
    needs: list[ModelNeed] = []

    def need(model: Any, where: str, replicas: int = 1,
             pins: tuple[str, ...] = ()) -> ModelNeed:
        if not isinstance(model, str) or model not in catalog:
            raise PlacementInputError(f"{where}: model {model!r} is not in the catalog "
                                      f"(known: {', '.join(sorted(catalog))})")
        ram, vram = catalog[model]
        return ModelNeed(model, ram, vram, replicas, pins)

    if declared:
        values = list(declared.values())
        first_host = sorted(declared)[0]
        if any(v != values[0] for v in values):
            raise PlacementInputError(f"{WANTED_VAR} differs between hosts; set it once, in "
                                      "group_vars/all")
        if not isinstance(values[0], list):
            raise PlacementInputError(f"{first_host}: {WANTED_VAR} must be a list of "
                                      "{model, replicas, hosts}")
        for index, entry in enumerate(values[0]):
            where = f"{first_host}: {WANTED_VAR}[{index}]"
            if not isinstance(entry, Mapping):
                raise PlacementInputError(f"{where} must be a mapping with model, replicas, "
                                          "hosts")
            replicas = _int(entry.get("replicas", 1))
            if replicas is None or replicas < 1:
                raise PlacementInputError(f"{where}.replicas must be a whole number >= 1 "
                                          f"(got {entry.get('replicas')!r})")
            pins = entry.get("hosts") or []
            if not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
                raise PlacementInputError(f"{where}.hosts must be a list of host names")
            needs.append(need(entry.get("model"), where, replicas, tuple(pins)))
        return needs
    for host, variables in sorted(hostvars.items()):
        listed = variables.get("model_store_models") or []
        if isinstance(listed, list):
            needs.extend(need(m, f"{host}: model_store_models", 1, (host,)) for m in listed
                         if isinstance(m, str) and "{{" not in m)
    return needs


def placement_hosts(hostvars: Mapping[str, Mapping[str, Any]],
                    groups: Mapping[str, list[str]]) -> list[str]:
    """Hosts that may serve models: the `inference` group when there is one, else every host
    outside `front_gateway`."""
    names = sorted(hostvars)
    if any("inference" in groups.get(h, []) for h in names):
        return [h for h in names if "inference" in groups.get(h, [])]
    return [h for h in names if "front_gateway" not in groups.get(h, [])]


def placement_from_inventory(hostvars: Mapping[str, Mapping[str, Any]],
                             groups: Mapping[str, list[str]],
                             catalog: Mapping[str, tuple[int, int]],
                             recorded: Mapping[str, Mapping[str, Any]] | None = None
                             ) -> Placement:
    serving = placement_hosts(hostvars, groups)
    hosts = [host_facts(h, hostvars[h], tuple(groups.get(h, [])), (recorded or {}).get(h))
             for h in serving]
    if declares_placement(hostvars):
        return place(hosts, wanted_models(hostvars, catalog))
    # No fleet plan: each host's own models, judged only where its facts are recorded.
    known = {h.name for h in hosts if h.memory_mb is not None}
    return place(hosts, wanted_models({h: hostvars[h] for h in sorted(known)}, catalog))


def cached_facts(directory: Any, hosts: list[str]) -> dict[str, dict[str, Any]]:
    """What Ansible's fact cache (jsonfile, ansible.cfg) last recorded of each host: host memory
    (`memtotal_mb`) and, where gpu_facts ran, its GPUs. Unreadable or absent entries: none."""
    import json
    from pathlib import Path

    out: dict[str, dict[str, Any]] = {}
    for host in hosts:
        path = Path(directory) / host
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("__payload__"), str):
                data = json.loads(data["__payload__"])
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        gpu = data.get("gpuforge_gpu") or data.get("ansible_gpuforge_gpu") or {}
        entry: dict[str, Any] = {"memtotal_mb": data.get("ansible_memtotal_mb")}
        if isinstance(gpu, dict) and isinstance(gpu.get("gpus"), list):
            entry["gpus"] = gpu["gpus"]
        out[host] = entry
    return out


def resolved_placement(resolved: Any, catalog: Mapping[str, Any] | None = None,
                       recorded: Mapping[str, Mapping[str, Any]] | None = None) -> Placement:
    """The placement of a resolved inventory (toolkit.inventory.ResolvedInventory) against the
    model catalog (seeds/models.yml). Raises InvalidInput naming the variable on bad input."""
    from toolkit.errors import InvalidInput
    from toolkit.models.catalog import load_catalog

    models = catalog if catalog is not None else load_catalog()
    needs = {name: (int(m.ram_mb), int(m.vram_mb)) for name, m in models.items()}
    plain = _plain_hostvars(resolved)
    if recorded is None:
        from toolkit.paths import cache_dir

        recorded = cached_facts(cache_dir() / "facts", sorted(plain))
    try:
        return placement_from_inventory(plain, resolved.groups, needs, recorded)
    except PlacementInputError as exc:
        raise InvalidInput(f"placement: {exc}",
                           hint="see `gpuforge place --help` and docs/fleet.md") from exc


# What the placement decides on each host it places models on (the inventory setting one of
# these beside `gpuforge_placement` would silently win over it: refused instead).
PLACED_VARS = ("model_store_models", "llama_cpp_instances")
# The extra variable `apply`, `plan` and `validate` pass: host -> models placed on it.
PLACED_MODELS_VAR = "gpuforge_placed_models"


def declares_placement(hostvars: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(v.get(WANTED_VAR) is not None for v in hostvars.values())


def placement_conflicts(hostvars: Mapping[str, Mapping[str, Any]],
                        groups: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    """(host, variable) for each serving host that sets a variable the placement decides,
    when `gpuforge_placement` is declared."""
    if not declares_placement(hostvars):
        return []
    return [(h, name) for h in placement_hosts(hostvars, groups) for name in PLACED_VARS
            if name in hostvars[h]]


def _plain_hostvars(resolved: Any) -> dict[str, dict[str, Any]]:
    from toolkit.specs import is_templated, is_vaulted

    return {host: {name: sv.value for name, sv in variables.items()
                   if not is_vaulted(sv.value) and not is_templated(sv.value)}
            for host, variables in resolved.hosts.items()}


def placement_variables(resolved: Any) -> dict[str, Any]:
    """The extra variables a run gets from the placement: with `gpuforge_placement`
    declared and placeable, `gpuforge_placed_models` (host -> models), which the roles' defaults of
    model_store_models and llama_cpp_instances follow; else nothing (each host's own
    variables decide)."""
    if not declares_placement(resolved.hosts):
        return {}
    placement = resolved_placement(resolved)
    # Refused (only possible for a profile that deploys no models, such as `facts` on a
    # fleet whose memory is not recorded yet): nothing is passed.
    return {PLACED_MODELS_VAR: placement.models_by_host()} if placement.ok else {}


def placement_problems(resolved: Any) -> list[Any]:
    """`check`/`plan`/`apply`: each refused placement as a problem (toolkit.specs.Problem)."""
    from toolkit.errors import InvalidInput
    from toolkit.specs import Problem

    try:
        placement = resolved_placement(resolved)
    except InvalidInput as exc:
        return [Problem("placement", WANTED_VAR, exc.message, ", ".join(map(str, resolved.paths)))]
    where = ", ".join(map(str, resolved.paths))
    conflicts = [Problem(host, name, f"is set, but {WANTED_VAR} decides the models of "
                         f"{host}; remove {name} from the inventory or {WANTED_VAR} "
                         "(docs/fleet.md)", where)
                 for host, name in placement_conflicts(_plain_hostvars(resolved),
                                                       resolved.groups)]
    return conflicts + [Problem(r.host or "placement",
                                WANTED_VAR if r.host is None else "placement",
                                f"refused: {r.message}", where)
                        for r in placement.refusals]
