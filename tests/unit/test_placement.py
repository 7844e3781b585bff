"""Placement (`gpuforge place`): recorded facts of several machine shapes, spread, pack, pins and
refusals naming host, model and shortfall."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.cli.app import main
from toolkit.placement import (
    HostFacts,
    ModelNeed,
    PlacementInputError,
    place,
    placement_from_inventory,
)

# GPU memory as nvidia-smi reports it (MiB): H100 SXM5 80GB, H200 141GB.
H100 = 81559
H200 = 143771
# Model needs in the catalog's units (ram_mb, vram_mb); sizes chosen for the shapes below.
CATALOG = {
    "small-cpu": (512, 0),
    "mid-gpu": (8000, 20000),
    "large-gpu": (32000, 150000),  # more than one H200: two GPUs of one host
    "h100-sized": (16000, 70000),
}

ONE_H100 = HostFacts("h100-1", 256000, (H100,))
EIGHT_H200 = HostFacts("h200-8", 2000000, (H200,) * 8)
CPU_16G = HostFacts("cpu-16g", 16000)


def need(name: str, replicas: int = 1, hosts: tuple[str, ...] = ()) -> ModelNeed:
    ram, vram = CATALOG[name]
    return ModelNeed(name, ram, vram, replicas, hosts)


def test_one_h100_takes_one_model_that_fills_it() -> None:
    result = place([ONE_H100], [need("h100-sized")])
    assert result.ok
    (a,) = result.assignments
    assert (a.host, a.gpus, a.vram_mb) == ("h100-1", (0,), 70000)


def test_second_model_on_a_full_h100_is_refused_with_the_shortfall() -> None:
    result = place([ONE_H100], [need("h100-sized"), need("mid-gpu")])
    assert not result.ok
    (refusal,) = result.refusals
    assert refusal.host == "h100-1" and refusal.model == "mid-gpu"
    # 81559 - 70000 = 11559 MiB left, 20000 needed.
    assert "needs 20000 MiB of GPU memory, 11559 MiB free (short 8441 MiB)" in refusal.message
    assert "host h100-1: model mid-gpu" in refusal.message


def test_eight_h200_pack_single_models_onto_the_fullest_gpu() -> None:
    result = place([EIGHT_H200], [need("mid-gpu"), need("h100-sized"), need("large-gpu")])
    assert result.ok
    gpus = {a.model: a.gpus for a in result.assignments}
    # The model larger than one GPU takes two whole GPUs; the others share one GPU (packed).
    assert len(gpus["large-gpu"]) == 2
    assert gpus["h100-sized"] == gpus["mid-gpu"]
    assert not set(gpus["large-gpu"]) & set(gpus["mid-gpu"])


def test_cpu_only_host_serves_cpu_models_and_refuses_gpu_ones() -> None:
    ok = place([CPU_16G], [need("small-cpu")])
    assert ok.ok and ok.assignments[0].gpus == ()
    refused = place([CPU_16G], [need("mid-gpu")])
    assert [r.message for r in refused.refusals] == [
        "host cpu-16g: model mid-gpu needs 20000 MiB of GPU memory and has no GPU (replica 1 of 1)"]


def test_cpu_host_memory_counts_the_reserve() -> None:
    # 16000 MB - 1024 reserved = 14976 MB: three models of 4000 MB fit, the fourth does not.
    result = place([CPU_16G], [ModelNeed(f"m{i}", 4000, 0, 1, ()) for i in range(4)])
    assert len(result.assignments) == 3
    assert result.refusals[0].message.startswith(
        "host cpu-16g: model m3 needs 4000 MB of host memory, 2976 MB free (short 1024 MB)")


def test_mixed_fleet_spreads_replicas_and_packs_the_rest() -> None:
    hosts = [ONE_H100, EIGHT_H200, CPU_16G, HostFacts("cpu-64g", 64000)]
    result = place(hosts, [need("small-cpu", replicas=3), need("mid-gpu"), need("h100-sized")])
    assert result.ok
    small = sorted(a.host for a in result.assignments if a.model == "small-cpu")
    # Spread: three distinct hosts, the ones with the most host memory.
    assert small == ["cpu-64g", "h100-1", "h200-8"]
    # Pack: the single-replica GPU models go to the host with the least GPU room that fits.
    assert {a.host for a in result.assignments if a.model != "small-cpu"} == {"h100-1",
                                                                            "h200-8"}
    assert [a.host for a in result.assignments if a.model == "h100-sized"] == ["h100-1"]
    assert sorted(result.pools()["small-cpu"]) == small


def test_pin_keeps_a_model_on_its_hosts_and_refuses_when_they_are_full() -> None:
    hosts = [ONE_H100, EIGHT_H200]
    pinned = place(hosts, [need("mid-gpu", hosts=("h100-1",))])
    assert [a.host for a in pinned.assignments] == ["h100-1"]
    refused = place(hosts, [need("large-gpu", hosts=("h100-1",))])
    assert refused.refusals[0].host == "h100-1"
    assert "short 68441 MiB" in refused.refusals[0].message


def test_more_replicas_than_hosts_is_refused() -> None:
    result = place([CPU_16G], [need("small-cpu", replicas=2)])
    assert "wants 2 replicas on distinct hosts; 1 host(s) can take it (cpu-16g)" in \
        result.refusals[0].message


def test_unknown_facts_take_nothing_and_say_so() -> None:
    result = place([HostFacts("mystery", None)], [need("small-cpu")])
    assert "its memory is unknown" in result.refusals[0].message


def test_inventory_variables_and_recorded_facts() -> None:
    hostvars = {
        "a": {"gpuforge_memory_mb": 64000, "gpuforge_placement": [
            {"model": "mid-gpu", "replicas": 1}, {"model": "small-cpu", "hosts": ["b"]}]},
        "b": {"gpuforge_memory_mb": 16000, "gpuforge_placement": [
            {"model": "mid-gpu", "replicas": 1}, {"model": "small-cpu", "hosts": ["b"]}]},
        "front": {},
    }
    groups = {"a": [], "b": [], "front": ["front_gateway"]}
    # Host a's GPUs come from a `gpuforge facts --json` record (no gpuforge_gpu_count set).
    recorded = {"a": {"gpus": [{"vendor": "nvidia", "memory_mib": H100}]}}
    result = placement_from_inventory(hostvars, groups, CATALOG, recorded)
    assert result.ok
    assert result.pools() == {"mid-gpu": ["a"], "small-cpu": ["b"]}
    assert "front" not in {h.name for h in result.hosts}


def test_without_a_plan_each_hosts_models_are_checked_where_facts_are_known() -> None:
    hostvars = {"known": {"gpuforge_memory_mb": 1200, "model_store_models": ["small-cpu"]},
                "unknown": {"model_store_models": ["large-gpu"]}}
    result = placement_from_inventory(hostvars, {}, CATALOG)
    # 1200 - 1024 reserved = 176 MB free for a 512 MB model; the unknown host is not judged.
    assert [r.host for r in result.refusals] == ["known"]


@pytest.mark.parametrize(("variables", "fragment"), [
    ({"gpuforge_gpu_count": 2}, "gpuforge_gpu_memory_mib (memory of one GPU) is not set"),
    ({"gpuforge_memory_mb": "lots"}, "gpuforge_memory_mb must be a whole number"),
    ({"gpuforge_memory_mb": 1, "gpuforge_placement": [{"model": "nope"}]},
     "model 'nope' is not in the catalog"),
    ({"gpuforge_memory_mb": 1, "gpuforge_placement": [{"model": "small-cpu", "replicas": 0}]},
     "replicas must be a whole number >= 1"),
])
def test_bad_variables_name_the_variable(variables: dict[str, object], fragment: str) -> None:
    with pytest.raises(PlacementInputError, match=fragment.replace("(", r"\(")
                       .replace(")", r"\)")):
        placement_from_inventory({"h": variables}, {}, CATALOG)


def _inventory(tmp_path: Path, placement: str) -> Path:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    small-1:\n      gpuforge_memory_mb: 2048\n"
        "    small-2:\n      gpuforge_memory_mb: 2048\n"
        f"  vars:\n    gpuforge_placement: {placement}\n", encoding="utf-8")
    return tmp_path / "hosts.yml"


def test_cli_places_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, "[{model: smollm2-135m-instruct, replicas: 2}]")
    assert main(["place", "-i", str(inv), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and sorted(doc["pools"]["smollm2-135m-instruct"]) == ["small-1", "small-2"]


def test_cli_refuses_overcommit_with_exit_3(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, "[{model: smollm2-135m-instruct, replicas: 3}]")
    assert main(["place", "-i", str(inv)]) == 3
    assert "wants 3 replicas on distinct hosts; 2 host(s)" in capsys.readouterr().err
    # small-1 with 1500 MB: 1500 - 1024 reserved = 476 MB free, 512 MB needed: short 36 MB.
    (tmp_path / "hosts.yml").write_text(
        (tmp_path / "hosts.yml").read_text(encoding="utf-8").replace("replicas: 3",
                                                                    "replicas: 2")
        .replace("2048\n    small-2", "1500\n    small-2"), encoding="utf-8")
    assert main(["place", "-i", str(inv), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["refusals"] == [{
        "model": "smollm2-135m-instruct", "host": "small-1",
        "message": "host small-1: model smollm2-135m-instruct needs 512 MB of host memory, "
                   "476 MB free (short 36 MB) (replica 2 of 2)"}]


def test_cli_bad_variable_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _inventory(tmp_path, "[{model: no-such-model}]")
    assert main(["place", "-i", str(inv)]) == 3
    err = capsys.readouterr().err
    assert "placement:" in err and "no-such-model" in err and "Traceback" not in err


def test_json_matches_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.test_json_contract import documented

    doc = documented("place")
    inv = _inventory(tmp_path, "[{model: smollm2-135m-instruct, replicas: 2}]")
    assert main(["place", "-i", str(inv), "--json"]) == 0
    real = json.loads(capsys.readouterr().out)
    assert set(real) == set(doc)
    assert set(real["hosts"]["small-1"]) == set(doc["hosts"]["gpu-a01"])
    assert set(real["assignments"][0]) == set(doc["assignments"][0])
    assert set(doc["refusals"][0]) == {"model", "host", "message"}


def test_facts_come_from_ansibles_fact_cache(tmp_path: Path) -> None:
    from toolkit.placement import cached_facts

    payload = {"ansible_memtotal_mb": 257000, "gpuforge_gpu": {"gpus": [
        {"vendor": "nvidia", "memory_mib": H200}, {"vendor": "nvidia", "memory_mib": H200}]}}
    (tmp_path / "gpu-1").write_text(json.dumps({"__payload__": json.dumps(payload)}),
                                    encoding="utf-8")
    (tmp_path / "broken").write_text("{not json", encoding="utf-8")
    recorded = cached_facts(tmp_path, ["gpu-1", "broken", "absent"])
    assert list(recorded) == ["gpu-1"]
    result = placement_from_inventory(
        {"gpu-1": {"gpuforge_placement": [{"model": "large-gpu"}]}}, {}, CATALOG, recorded)
    assert result.ok and result.assignments[0].gpus == (0, 1)
    assert result.hosts[0].memory_mb == 257000


def test_placement_becomes_the_runs_models(tmp_path: Path) -> None:
    """With `gpuforge_placement` declared, every run gets `gpuforge_placed_models`; without
    it, nothing (each host's own variables decide)."""
    from toolkit.inventory import resolve
    from toolkit.placement import placement_variables

    spread = placement_variables(resolve([_inventory(
        tmp_path, "[{model: smollm2-135m-instruct, replicas: 2}]")]))
    assert spread == {"gpuforge_placed_models": {"small-1": ["smollm2-135m-instruct"],
                                                 "small-2": ["smollm2-135m-instruct"]}}
    one = placement_variables(resolve([_inventory(
        tmp_path, "[{model: smollm2-135m-instruct, replicas: 1}]")]))
    assert sorted(map(len, one["gpuforge_placed_models"].values())) == [0, 1]
    (tmp_path / "plain.yml").write_text(
        "all:\n  hosts:\n    small-1:\n      model_store_models: [smollm2-135m-instruct]\n",
        encoding="utf-8")
    assert placement_variables(resolve([tmp_path / "plain.yml"])) == {}


def test_a_model_list_beside_the_placement_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The inventory's own model list would silently win over the placement: check refuses
    it, naming host and variable, before any host is touched."""
    inv = _inventory(tmp_path, "[{model: smollm2-135m-instruct, replicas: 2}]")
    inv.write_text(inv.read_text(encoding="utf-8").replace(
        "    small-2:\n", "    small-2:\n      model_store_models: [smollm2-135m-instruct]\n"),
        encoding="utf-8")
    assert main(["check", "-i", str(inv), "--profile", "cpu-llm"]) == 3
    err = capsys.readouterr().err
    assert "small-2" in err and "model_store_models" in err
    assert "gpuforge_placement decides the models of small-2" in err


_DEFAULTS_PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  vars_files: [{model_store}, {llama_cpp}]
  tasks:
    - ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0600"
        content: "{{{{ {{'models': model_store_models, 'instances': llama_cpp_instances}}
                      | to_json }}}}"
      delegate_to: localhost
"""


def test_the_roles_serve_what_the_placement_put_on_each_host(tmp_path: Path) -> None:
    """model_store_models and llama_cpp_instances, as Ansible renders the roles' defaults
    with the variable a run gets: the placed host installs and serves the model, the other
    one nothing; without a placement both keep the default model."""
    import os
    import subprocess
    import sys

    from toolkit.inventory import resolve
    from toolkit.paths import collections_dir
    from toolkit.placement import placement_variables

    root = Path(__file__).resolve().parents[2]
    inv = _inventory(tmp_path, "[{model: smollm2-135m-instruct, replicas: 1}]")
    placed = placement_variables(resolve([inv]))["gpuforge_placed_models"]
    out = tmp_path / "out"
    out.mkdir()
    play = tmp_path / "play.yml"
    play.write_text(_DEFAULTS_PLAY.format(
        model_store=root / "roles/model_store/defaults/main.yml",
        llama_cpp=root / "roles/llama_cpp/defaults/main.yml", out=out), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false")

    def render(*extra: str) -> dict[str, dict[str, object]]:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "small-1,small-2,",
             "-e", f"ansible_python_interpreter={sys.executable}", *extra, str(play)],
            capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return {h: json.loads((out / f"{h}.json").read_text(encoding="utf-8"))
                for h in ("small-1", "small-2")}

    got = render("-e", json.dumps({"gpuforge_placed_models": placed}))
    serving = [h for h, models in placed.items() if models]
    assert len(serving) == 1
    for host, values in got.items():
        if host in serving:
            assert values == {"models": ["smollm2-135m-instruct"], "instances": [
                {"name": "smollm2-135m-instruct", "model": "smollm2-135m-instruct",
                 "port": 8081}]}
        else:
            assert values == {"models": [], "instances": []}
    default = {"models": ["smollm2-135m-instruct"], "instances": [
        {"name": "smollm2-135m-instruct", "model": "smollm2-135m-instruct", "port": 8081}]}
    assert render() == {"small-1": default, "small-2": default}


def test_runtime_instances_filter() -> None:
    import importlib.util

    from ansible.errors import AnsibleFilterError

    path = Path(__file__).resolve().parents[2] / "plugins/filter/runtime_instances.py"
    spec = importlib.util.spec_from_file_location("runtime_instances", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.runtime_instances(["a", "b", "a"], 9000) == [
        {"name": "a", "model": "a", "port": 9000}, {"name": "b", "model": "b", "port": 9001}]
    with pytest.raises(AnsibleFilterError, match="list of model names"):
        module.runtime_instances("a")


def test_a_fleet_without_recorded_memory_can_still_record_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A placement on hosts whose memory nobody recorded yet is refused where models would
    be deployed, and names `gpuforge facts` as the way out; the `facts` run (and base, which
    deploys no model) is not refused for it, so that way out is open."""
    from toolkit.check import check_inventory
    from toolkit.inventory import resolve
    from toolkit.placement import placement_variables
    from toolkit.profiles import Profile

    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    fresh-1:\n    fresh-2:\n"
        "  vars:\n    gpuforge_placement: [{model: smollm2-135m-instruct, replicas: 2}]\n",
        encoding="utf-8")
    inv = tmp_path / "hosts.yml"
    assert main(["check", "-i", str(inv), "--profile", "cpu-llm"]) == 3
    assert "gpuforge facts" in capsys.readouterr().err
    facts = Profile(name="facts", description="", playbook=tmp_path / "facts.yml", roles=(),
                    validate={})
    assert [p for p in check_inventory([inv], facts)[1] if "placement" in str(p)] == []
    assert main(["check", "-i", str(inv), "--profile", "base"]) == 0
    assert placement_variables(resolve([inv])) == {}
