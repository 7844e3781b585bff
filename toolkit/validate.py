"""Judge what the validate role measured: named checks with a measured value and a threshold.

Pure: the role (`roles/validate`) measures on each host and publishes one JSON document per
host; `judge_host` turns a document and the host's thresholds into `Check`s, and the
renderers below turn checks into a table's rows, JSON and JUnit XML. No I/O here except
reading the role's defaults (the thresholds' single source of truth).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from toolkit.run_status import judged_exit_code

# Threshold names; the inventory spells them validate_<name>, a profile's `validate:` block
# spells them <name>.
THRESHOLD_KEYS = ("min_tokens_per_s", "max_ttft_s", "max_restarts", "expect_answer")
PASS, FAIL = "pass", "fail"


@dataclass(frozen=True)
class Check:
    host: str
    name: str
    status: str  # pass | fail
    measured: Any
    threshold: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_thresholds(roles_dir: Path) -> dict[str, Any]:
    """The validate role's defaults for the threshold variables."""
    data = yaml.safe_load((roles_dir / "validate" / "defaults" / "main.yml").read_text(
        encoding="utf-8")) or {}
    return {k: data[f"validate_{k}"] for k in THRESHOLD_KEYS if f"validate_{k}" in data}


def thresholds_for(defaults: Mapping[str, Any], profile_block: Mapping[str, Any],
                   hostvars: Mapping[str, Any],
                   gpu_floors: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Role defaults < the profile's `validate:` block < the floors of the host's GPU class
    (`thresholds_for_gpu`, GPU hosts only) < inventory `validate_*` variables."""
    out = dict(defaults)
    out.update({k: v for k, v in profile_block.items() if k in THRESHOLD_KEYS})
    out.update({k: v for k, v in (gpu_floors or {}).items() if k in THRESHOLD_KEYS})
    out.update({k: hostvars[f"validate_{k}"] for k in THRESHOLD_KEYS
                if f"validate_{k}" in hostvars})
    return out


def _check(host: str, name: str, ok: bool, measured: Any, threshold: str,
           message: str = "") -> Check:
    return Check(host, name, PASS if ok else FAIL, measured, threshold, message)


def _systemctl_show(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition("=")
        if key:
            out[key.strip()] = value.strip()
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _slug(name: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-") or "unnamed"


def driver_matches_pin(version: str, pin: str) -> bool:
    """A pin is a whole version (580.95.05) or a branch (580, what nvidia_driver pins)."""
    return not pin or version == pin or ("." not in pin and version.startswith(pin + "."))


def judge_gpu(host: str, m: Mapping[str, Any], gpu_host: bool) -> list[Check]:
    gpu = m.get("gpu")
    if not isinstance(gpu, Mapping):
        if gpu_host:
            return [_check(host, "gpu.visible", False, None, ">= 1 GPU",
                           "GPU facts were not gathered (validate_gpu_checks is off?)")]
        return []
    count = int(_number(gpu.get("gpu_count")) or 0)
    if not gpu_host and count == 0:
        return []
    checks = [_check(host, "gpu.visible", count >= 1, count, ">= 1 GPU",
                     "" if count else "no GPU on the PCI bus")]
    pin = str(m.get("driver_pin") or "")
    driver = gpu.get("nvidia_driver") if isinstance(gpu.get("nvidia_driver"), Mapping) else {}
    version = driver.get("version") if driver else None
    if pin or int(_number(gpu.get("nvidia_gpu_count")) or 0):
        ok = bool(version) and driver_matches_pin(str(version), pin)
        pinned = f"branch {pin}" if "." not in pin else pin
        why = "" if ok else ("no NVIDIA driver loaded" if not version
                             else f"driver {version} is not the pinned {pinned}")
        checks.append(_check(host, "gpu.driver", ok, version,
                             (f"== {pin}" if "." in pin else f"branch {pin}") if pin else "loaded",
                             why))
    if int(_number(gpu.get("nvidia_gpu_count")) or 0):
        checks.append(judge_gpus_visible(host, gpu))
    container = m.get("container")
    if isinstance(container, Mapping):
        out = str(container.get("stdout") or "")
        seen = len(re.findall(r"^GPU \d+:", out, re.M))
        ok = container.get("rc") == 0 and seen >= 1
        why = "" if ok else (str(container.get("stderr") or out).strip().splitlines() or
                             ["nvidia-smi in a container failed"])[-1]
        checks.append(_check(host, "gpu.container", ok, seen, ">= 1 GPU in a container", why))
    return checks


def judge_endpoints(host: str, m: Mapping[str, Any], t: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    units = list(m.get("units") or [])
    health = list(m.get("health") or [])
    max_restarts = int(_number(t.get("max_restarts")) or 0)
    for i, entry in enumerate(m.get("endpoints") or []):
        desc = entry.get("descriptor") if isinstance(entry, Mapping) else None
        if not isinstance(desc, Mapping):
            continue
        name = _slug(desc.get("name"))
        shown = _systemctl_show(str(units[i]) if i < len(units) else "")
        state = shown.get("ActiveState") or "unknown"
        checks.append(_check(host, f"runtime.{name}.active", state == "active", state,
                             "== active",
                             "" if state == "active" else f"unit {desc.get('unit')} is {state}"))
        restarts = _number(shown.get("NRestarts"))
        checks.append(_check(
            host, f"runtime.{name}.restarts", restarts is not None and restarts <= max_restarts,
            None if restarts is None else int(restarts), f"<= {max_restarts}",
            "" if restarts is not None and restarts <= max_restarts else
            f"unit {desc.get('unit')} restarted {shown.get('NRestarts', '?')} times"))
        status = health[i] if i < len(health) else None
        checks.append(_check(
            host, f"runtime.{name}.health", status == 200, status, "== 200",
            "" if status == 200 else
            f"GET {desc.get('upstream')}{desc.get('health_path', '/health')} "
            + (f"answered {status}" if isinstance(status, int) and status > 0
               else "got no answer")))
    return checks


def tokens_per_second(chat: Mapping[str, Any]) -> float | None:
    """llama-server's own decode rate when present, else tokens over the decode time."""
    timings = chat.get("timings")
    if isinstance(timings, Mapping):
        rate = _number(timings.get("predicted_per_second"))
        if rate:
            return round(rate, 2)
    tokens = _number(chat.get("completion_tokens"))
    total = _number(chat.get("total_s"))
    ttft = _number(chat.get("ttft_s")) or 0.0
    if not tokens or not total:
        return None
    if tokens > 1 and total > ttft:
        # The first token's time is prefill; the rest is the decode rate users feel.
        return round((tokens - 1) / (total - ttft), 2)
    return round(tokens / total, 2)


def judge_gateway(host: str, m: Mapping[str, Any], t: Mapping[str, Any]) -> list[Check]:
    if not isinstance(m.get("gateway"), Mapping):
        return []
    raw = m.get("chat")
    chat: Mapping[str, Any] = {}
    if isinstance(raw, Mapping):
        try:
            parsed = json.loads(str(raw.get("stdout") or ""))
            chat = parsed if isinstance(parsed, Mapping) else {}
        except ValueError:
            chat = {"error": str(raw.get("stderr") or raw.get("stdout") or "no output")[-300:]}
    content = str(chat.get("content") or "")
    expect = str(t.get("expect_answer") or "")
    ok = chat.get("status") == 200 and bool(content.strip()) and (
        expect.lower() in content.lower())
    why = ""
    if not ok:
        why = str(chat.get("error") or "").strip() or (
            f"answer does not contain {expect!r}: {content.strip()[:120]!r}" if content.strip()
            else f"HTTP {chat.get('status')} and an empty answer")
    # An HTML error page (nginx's 502) becomes one readable line.
    why = " ".join(re.sub(r"<[^>]*>", " ", why).split())
    if not ok and isinstance(chat.get("status"), int) and f"{chat['status']}" not in why[:40]:
        why = f"HTTP {chat['status']}: {why}"
    checks = [_check(host, "gateway.chat", ok, chat.get("status"),
                     f"== 200 and answer contains {expect!r}" if expect
                     else "== 200 and a non-empty answer", why[:300])]
    return checks + judge_speed(host, _number(chat.get("ttft_s")), tokens_per_second(chat), t)


def judge_speed(host: str, ttft: float | None, rate: float | None,
                t: Mapping[str, Any]) -> list[Check]:
    """Time to first token and tokens/s against the thresholds (`gateway.ttft_s`,
    `gateway.tokens_per_s`); None means nothing was measured, which fails."""
    checks: list[Check] = []
    max_ttft = float(_number(t.get("max_ttft_s")) or 0.0)
    checks.append(_check(host, "gateway.ttft_s", ttft is not None and ttft <= max_ttft,
                         ttft, f"<= {max_ttft:g}",
                         "" if ttft is not None and ttft <= max_ttft else
                         ("no token came back" if ttft is None
                          else f"first token after {ttft:g}s")))
    min_rate = float(_number(t.get("min_tokens_per_s")) or 0.0)
    checks.append(_check(host, "gateway.tokens_per_s", rate is not None and rate >= min_rate,
                         rate, f">= {min_rate:g}",
                         "" if rate is not None and rate >= min_rate else
                         ("no tokens measured" if rate is None
                          else f"{rate:g} tokens/s is below {min_rate:g}")))
    return checks


def judge_models(host: str, m: Mapping[str, Any]) -> list[Check]:
    """Each model file in the store that the catalog pins: its sha256 against the pin."""
    checks: list[Check] = []
    for entry in m.get("models") or []:
        if not isinstance(entry, Mapping):
            continue
        expected = str(entry.get("sha256") or "").lower()
        actual = str(entry.get("checksum") or "").lower() or None
        path = str(entry.get("path") or "")
        name = _slug(f"{entry.get('name') or ''}/{Path(path).name}".strip("/"))
        ok = bool(expected) and actual == expected
        why = "" if ok else (f"{path} is missing" if not entry.get("exists")
                             else f"{path} has sha256 {actual}")
        checks.append(_check(host, f"model.{name}.sha256", ok, actual, f"== {expected}", why))
    return checks


def judge_host(host: str, measured: Mapping[str, Any] | None, thresholds: Mapping[str, Any],
               *, gpu_host: bool = False, failure: str = "") -> list[Check]:
    """Every check for one host; a host that published nothing fails `host.measured`."""
    if measured is None:
        return [_check(host, "host.measured", False, None, "measurements published",
                       failure or "the validate playbook did not finish on this host")]
    checks = [_check(host, "host.measured", True, "yes", "measurements published")]
    checks += judge_gpu(host, measured, gpu_host)
    checks += judge_endpoints(host, measured, thresholds)
    checks += judge_runtimes_on_gpu(host, measured)
    checks += judge_gateway(host, measured, thresholds)
    checks += judge_models(host, measured)
    return checks


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def exit_code(playbook_code: int, checks: Iterable[Check]) -> int:
    """The verdict's exit code (policy: `toolkit.run_status.judged_exit_code`): 4 when a
    host was unreachable, 2 when a check failed, else the playbook's own code."""
    return int(judged_exit_code(playbook_code, any(not c.passed for c in checks)))


def table_rows(checks: Iterable[Check]) -> list[list[str]]:
    """Rows for the terminal table (long digests shortened; JSON and JUnit keep them whole)."""
    return [[c.host, c.name, c.status.upper(),
             "-" if c.measured is None else _short(str(c.measured)), _short(c.threshold),
             c.message] for c in checks]


def to_json(checks: list[Check], *, run_id: int | None, exit_code: int) -> dict[str, Any]:
    hosts = sorted({c.host for c in checks})
    return {
        "run_id": run_id, "command": "validate", "ok": all(c.passed for c in checks),
        "exit_code": exit_code,
        "hosts": {h: {"passed": sum(c.passed for c in checks if c.host == h),
                      "failed": sum(not c.passed for c in checks if c.host == h)}
                  for h in hosts},
        "checks": [c.to_dict() for c in checks],
    }


def to_junit(checks: list[Check], *, suite: str = "gpuforge validate") -> str:
    """JUnit XML: one testcase per check per host (classname = host), failures say
    measured vs threshold."""
    root = ET.Element("testsuites", name=suite, tests=str(len(checks)),
                      failures=str(sum(not c.passed for c in checks)))
    for host in sorted({c.host for c in checks}):
        mine = [c for c in checks if c.host == host]
        ts = ET.SubElement(root, "testsuite", name=f"{suite}: {host}", tests=str(len(mine)),
                           failures=str(sum(not c.passed for c in mine)), errors="0",
                           skipped="0")
        for c in mine:
            tc = ET.SubElement(ts, "testcase", classname=host, name=c.name)
            measured = "-" if c.measured is None else str(c.measured)
            props = ET.SubElement(tc, "system-out")
            props.text = f"measured {measured}, threshold {c.threshold}"
            if not c.passed:
                fail = ET.SubElement(tc, "failure",
                                     message=f"{c.name}: measured {measured}, "
                                             f"threshold {c.threshold}",
                                     type="ThresholdNotMet")
                fail.text = c.message or f"measured {measured}, threshold {c.threshold}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"


# --- GPU hosts: every GPU visible, the runtime really on it, per-class floors -----------------

_OFFLOAD = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_DEVICE = re.compile(r"using device ((?:CUDA|ROCm|Vulkan)\d+) \(([^)]*)\)")
_CUDA_INIT_FAILED = re.compile(r"ggml_cuda_init: failed to initialize \w+: (.*)")
_VLLM_PLATFORM = re.compile(r"detected platform (\w+)|(No platform detected)")
_OLLAMA_LIBRARY = re.compile(r'msg="inference compute".*?\blibrary=(\w+)')


def gpu_vendor(facts: Mapping[str, Any] | None) -> tuple[str, int]:
    """The vendor whose GPUs a host's gpu_facts show (nvidia first, then amd) and how many;
    ("", 0) on a host without NVIDIA or AMD GPUs."""
    facts = facts if isinstance(facts, Mapping) else {}
    nvidia = int(_number(facts.get("nvidia_gpu_count")) or 0)
    amd = int(_number(facts.get("amd_gpu_count")) or 0)
    return ("nvidia", nvidia) if nvidia else ("amd", amd) if amd else ("", 0)


def judge_gpus_visible(host: str, facts: Mapping[str, Any]) -> Check:
    """Every NVIDIA GPU on the PCI bus (gpu_facts) must be one nvidia-smi lists: a GPU that
    fell off the bus or a driver that lost it shows on PCI without nvidia-smi's UUID."""
    gpus = [g for g in facts.get("gpus") or [] if g.get("vendor") == "nvidia"]
    tools = facts.get("tools") or {}
    listed = [g for g in gpus if g.get("uuid")]
    missing = [str(g.get("pci_address")) for g in gpus if not g.get("uuid")]
    if gpus and not tools.get("nvidia_smi", True):
        return _check(host, "gpu.smi_visible", False, 0, f"== {len(gpus)} (PCI)",
                      "nvidia-smi is not installed")
    why = "" if not missing else (
        f"{len(missing)} of {len(gpus)} GPUs on the PCI bus missing from nvidia-smi: "
        + ", ".join(missing))
    return _check(host, "gpu.smi_visible", not missing, len(listed), f"== {len(gpus)} (PCI)", why)


def parse_offload(log: str) -> dict[str, Any]:
    """What llama-server's start-up log says about the GPU: layers offloaded of the model's
    total, and the devices it uses (CUDA0, ROCm0 ...)."""
    offload = _OFFLOAD.findall(log or "")
    layers, total = (int(offload[-1][0]), int(offload[-1][1])) if offload else (None, None)
    devices = list(dict.fromkeys(f"{d} ({name})" for d, name in _DEVICE.findall(log or "")))
    return {"layers": layers, "total": total, "devices": devices}


def judge_offload(host: str, instance: str, backend: str, log: str) -> Check:
    """A GPU backend must hold every layer on a GPU device; cpu needs nothing."""
    got = parse_offload(log)
    name = f"runtime.{_slug(instance)}.gpu"
    if backend == "cpu":
        return _check(host, name, True, "cpu", "cpu backend")
    want = "CUDA" if backend == "cuda" else "ROCm"
    on_device = [d for d in got["devices"] if d.startswith(want)]
    full = got["total"] is not None and got["total"] > 0 and got["layers"] == got["total"]
    measured = f"{got['layers']}/{got['total']} layers" if got["total"] is not None else None
    why = ""
    if not on_device:
        failed = _CUDA_INIT_FAILED.findall(log or "")
        why = (f"serving on the CPU: llama-server's log names no {want} device"
               + (f" ({want} failed to initialize: {failed[-1].strip()})" if failed else ""))
    elif not full:
        why = (f"only {measured} offloaded" if measured
               else "the log names no offloaded layers")
    return _check(host, name, not why, measured or (None if on_device else "cpu"),
                  f"every layer on {want}", why)


def _judge_vllm_device(host: str, name: str, want: str, log: str) -> Check:
    found = _VLLM_PLATFORM.findall(log)
    platform = (found[-1][0] or "none") if found else None
    ok = platform == want.lower()
    why = "" if ok else (
        "serving on the CPU: vLLM detected no GPU platform" if platform == "none"
        else f"serving on the CPU: vLLM detected platform {platform}, not {want.lower()}"
        if platform else "vLLM's log names no platform: cannot tell whether it serves on the GPU")
    return _check(host, name, ok, f"platform {platform}" if platform else None,
                  f"platform {want.lower()}", why)


def _judge_ollama_device(host: str, name: str, want: str, log: str) -> Check:
    libraries = list(dict.fromkeys(_OLLAMA_LIBRARY.findall(log)))
    got = parse_offload(log)
    full = got["total"] is None or got["layers"] == got["total"]
    measured = (f"{got['layers']}/{got['total']} layers" if got["total"] is not None
                else ",".join(libraries) or None)
    why = ""
    if want.lower() not in libraries:
        why = ("serving on the CPU: Ollama found " + ", ".join(libraries) + f", no {want} GPU"
               if libraries else "Ollama's log names no inference compute: cannot tell "
               "whether it serves on the GPU")
    elif not full:
        why = f"only {measured} offloaded"
    return _check(host, name, not why, measured, f"every layer on {want}", why)


def judge_runtime_device(host: str, descriptor: Mapping[str, Any], vendor: str, count: int,
                         journal: Mapping[str, Any] | None, error: str = "") -> Check:
    """On a host with `count` GPUs of `vendor`, one runtime instance must serve on them: its
    descriptor asks for the GPU, and its current run's journal lines (runtime_log.py) show
    every layer on a CUDA/ROCm device (llama.cpp, Ollama) or vLLM's CUDA/ROCm platform.
    llama-server's /props names no device or offload, so its log is the evidence."""
    instance = str(descriptor.get("name"))
    name = f"runtime.{_slug(instance)}.gpu"
    want = "CUDA" if vendor == "nvidia" else "ROCm"
    gpus = f"{count} {'NVIDIA' if vendor == 'nvidia' else 'AMD'} GPU{'s' if count != 1 else ''}"
    if descriptor.get("gpu") is False:
        return _check(host, name, False, "cpu", f"on {want}",
                      f"serving on the CPU: {instance} is configured for the CPU although the "
                      f"host has {gpus}")
    lines = [str(x) for x in (journal or {}).get("lines") or []]
    if not lines:
        why = str((journal or {}).get("error") or error or "").strip()
        return _check(host, name, False, None, f"on {want}",
                      f"no start-up lines of {descriptor.get('unit')}'s current run in its "
                      f"journal{f' ({why})' if why else ''}: cannot tell whether it serves "
                      f"on {want}")
    log = "\n".join(lines)
    runtime = str(descriptor.get("runtime") or "")
    if runtime == "vllm":
        return _judge_vllm_device(host, name, want, log)
    if runtime == "ollama":
        return _judge_ollama_device(host, name, want, log)
    return judge_offload(host, instance, want.lower(), log)


def runtime_journals(raw: Any) -> tuple[dict[str, Any], str]:
    """The published output of runtime_log.py ({rc, stdout, stderr}): its per-unit entries,
    and why there are none when it failed."""
    if not isinstance(raw, Mapping):
        return {}, "the runtime journals were not read"
    try:
        data = json.loads(str(raw.get("stdout") or ""))
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        return dict(data), ""
    lines = str(raw.get("stderr") or raw.get("stdout") or "").strip().splitlines()
    return {}, (lines[-1] if lines else f"runtime_log.py exited {raw.get('rc')}")


def judge_runtimes_on_gpu(host: str, m: Mapping[str, Any]) -> list[Check]:
    """`runtime.<instance>.gpu` for every runtime instance, on hosts whose GPU facts show
    NVIDIA or AMD GPUs only: a GPU host serving on its CPU fails."""
    vendor, count = gpu_vendor(m.get("gpu"))
    if not count:
        return []
    journals, error = runtime_journals(m.get("runtime_logs"))
    checks: list[Check] = []
    for entry in m.get("endpoints") or []:
        desc = entry.get("descriptor") if isinstance(entry, Mapping) else None
        if isinstance(desc, Mapping):
            checks.append(judge_runtime_device(host, desc, vendor, count,
                                               journals.get(str(desc.get("unit"))), error))
    return checks


def gpu_classes(seeds: Path) -> dict[str, Any]:
    """seeds/validate_gpu_classes.yml: validate's serving floors per GPU class."""
    data = yaml.safe_load((seeds / "validate_gpu_classes.yml").read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def thresholds_for_gpu(classes: Mapping[str, Any], gpu_facts: Mapping[str, Any] | None
                       ) -> dict[str, Any]:
    """The floors of the host's GPU class (seeds/validate_gpu_classes.yml): its NVIDIA or AMD
    GPUs' generation; the `cpu` class without GPUs; {} for a generation the seeds lack."""
    table = classes.get("classes") or {}
    gens = [str(g.get("generation")) for g in (gpu_facts or {}).get("gpus") or []
            if g.get("vendor") in ("nvidia", "amd") and g.get("generation")]
    key = gens[0] if gens else ("cpu" if not (gpu_facts or {}).get("gpu_count") else "")
    entry = table.get(key) or {}
    return {k: entry[k] for k in THRESHOLD_KEYS if k in entry}
