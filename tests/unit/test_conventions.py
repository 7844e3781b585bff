"""Controller conventions reach the roles as variables (toolkit.conventions), keys are read by
one module per side (toolkit.keys, the lookup gpuforge.infra.api_keys) with one format, and no
role reads gpuforge's environment."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit import conventions, keys, paths

ROOT = Path(__file__).resolve().parents[2]


def _lookup_module() -> Any:  # the collection's lookup plugin, loaded from its file
    spec = importlib.util.spec_from_file_location(
        "api_keys_lookup", ROOT / "plugins" / "lookup" / "api_keys.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_role_reads_gpuforge_environment() -> None:
    found = subprocess.run(["grep", "-rn", "GPUFORGE_", str(ROOT / "roles")],
                           capture_output=True, text=True, check=False).stdout
    assert found == ""


def test_role_variables_follow_the_toolkit_paths(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.delenv("GPUFORGE_STATE_DIR", raising=False)
    monkeypatch.delenv("GPUFORGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    values = conventions.role_variables()
    assert values.keys() == conventions.VARIABLES.keys()
    # the divergence of issue 13: with XDG_STATE_HOME set, the roles get the same state dir
    # `gpuforge models fetch` writes to
    assert values["gpuforge_state_dir"] == str(tmp_path / "xdg" / "gpuforge")
    assert values["gpuforge_state_dir"] == str(paths.state_dir())
    assert values["gpuforge_cache_dir"] == str(Path.home() / ".cache" / "gpuforge")
    assert values["gpuforge_seeds_dir"] == str(paths.content_root() / "seeds")
    assert values["gpuforge_api_key_env"] == ["GPUFORGE_API_KEYS", "GPUFORGE_API_KEY"]
    monkeypatch.setenv("GPUFORGE_CACHE_DIR", str(tmp_path / "c"))
    assert conventions.role_variables()["gpuforge_cache_dir"] == str(tmp_path / "c")


def test_no_key_value_is_a_role_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFORGE_API_KEY", "canary-key-0123456789abcdef")
    assert "canary-key-0123456789abcdef" not in repr(conventions.role_variables())


def test_every_role_using_a_convention_documents_it() -> None:
    for role_dir in sorted((ROOT / "roles").glob("*/defaults/main.yml")):
        role = role_dir.parent.parent
        used = {name for name in conventions.VARIABLES
                if any(name in p.read_text(encoding="utf-8")
                       for p in role.glob("*/*.yml") if "molecule" not in p.parts)}
        spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(
            encoding="utf-8"))["argument_specs"]["main"]["options"]
        assert used <= spec.keys(), (role.name, used - spec.keys())


def test_key_sources_read_the_same_on_both_sides(tmp_path: Path) -> None:
    text = "  first-key-aaaaaaaaaaaa \n\n second-key-bbbbbbbbbbbb\n"
    key_file = tmp_path / "keys"
    key_file.write_text(text)
    env = {"GPUFORGE_API_KEYS": "a-key-cccccccccccccc, b-key-dddddddddddddd,",
           "GPUFORGE_API_KEY": "c-key-eeeeeeeeeeeeee"}
    toolkit_side = keys.env_keys(env) + keys.read_key_file(key_file)
    role_side = _lookup_module().collect(list(keys.API_KEY_ENV), env, text)
    assert toolkit_side == role_side == [
        "a-key-cccccccccccccc", "b-key-dddddddddddddd", "c-key-eeeeeeeeeeeeee",
        "first-key-aaaaaaaaaaaa", "second-key-bbbbbbbbbbbb"]
    assert keys.read_key_file(tmp_path / "missing") == []
    assert keys.env_key_source({"GPUFORGE_API_KEY": "x"}) == "env GPUFORGE_API_KEY"
    assert keys.env_key_source({"GPUFORGE_API_KEYS": " , "}) is None


def test_lookup_reads_env_and_file_in_a_play(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("file-key-aaaaaaaaaaaaaa\n")
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.copy": {
            "dest": str(tmp_path / "out.json"), "mode": "0600",
            "content": "{{ {'all': lookup('gpuforge.infra.api_keys', env=['H2_K'], file='"
                       + str(key_file) + "'), 'first': lookup('gpuforge.infra.api_keys', "
                       "env=['H2_NONE'], file='', first=true)} | to_json }}"}}]}]))
    env = {**os.environ, "H2_K": "env-key-bbbbbbbbbbbbbb",
           "ANSIBLE_COLLECTIONS_PATH": str(paths.collections_dir())}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(play)],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out == {"all": ["env-key-bbbbbbbbbbbbbb", "file-key-aaaaaaaaaaaaaa"], "first": ""}
