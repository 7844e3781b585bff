"""The AWX configuration as code (docs/awx/) and the execution environment definition,
checked offline: every playbook passes `ansible-playbook --syntax-check` with awx.awx (from
the `ansible` package) and gpuforge.infra resolvable, every profile has a job template and
a project playbook importing the collection's, secrets reach jobs only as files, and the
EE definition is valid for ansible-builder and pins the versions the project runs."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.paths import collections_dir

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "docs" / "awx"
PROJECT = AWX / "project"
BIN = Path(sys.executable).parent


class _Loader(yaml.SafeLoader):
    """Reads docs/awx/vars (Ansible's `!unsafe` strings as plain strings)."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def _syntax_check(playbook: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections_dir()),
           "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                           playbook.name], cwd=playbook.parent, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.parametrize("playbook", [AWX / "site.yml", *sorted(PROJECT.glob("*.yml"))],
                         ids=lambda p: str(p.relative_to(AWX)))
def test_awx_playbooks_pass_syntax_check(playbook: Path) -> None:
    proc = _syntax_check(playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"playbook: {playbook.name}" in proc.stdout


def test_a_broken_awx_module_argument_fails_the_syntax_check(tmp_path: Path) -> None:
    """The check resolves awx.awx: a module it does not have is an error, not a pass."""
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: localhost\n  tasks:\n    - awx.awx.no_such_module: {}\n",
                      encoding="utf-8")
    proc = _syntax_check(broken)
    assert proc.returncode != 0 and "no_such_module" in proc.stdout + proc.stderr


def test_every_profile_has_a_job_template_and_a_project_playbook() -> None:
    profiles = _load(ROOT / "playbooks" / "profiles.yml")["profiles"]
    templates = {t["name"]: t["playbook"] for t in
                 _load(AWX / "vars" / "gpuforge.yml")["gpuforge_awx_profiles"]}
    assert set(templates) == set(profiles), "docs/awx/vars/gpuforge.yml lists other profiles"
    for name, profile in profiles.items():
        wrapper = _load(PROJECT / templates[name])
        imported = [p["ansible.builtin.import_playbook"] for p in wrapper]
        assert imported == [f"gpuforge.infra.{Path(profile['playbook']).stem}"], name


def test_workflow_runs_check_then_apply_then_validate() -> None:
    (play,) = _load(AWX / "site.yml")
    tasks = {next(k for k in t if k.startswith("awx.awx.")): t for t in play["tasks"]
             if any(k.startswith("awx.awx.") for k in t)}
    nodes = {n["identifier"]: n for n in tasks["awx.awx.workflow_job_template"]
             ["awx.awx.workflow_job_template"]["workflow_nodes"]}
    assert [n["related"]["success_nodes"][0]["identifier"]
            for n in (nodes["check"], nodes["apply"])] == ["apply", "validate"]
    assert "related" not in nodes["validate"]


def test_secrets_reach_jobs_only_as_files() -> None:
    (ctype,) = _load(AWX / "vars" / "credential_types.yml")["gpuforge_awx_credential_types"]
    secret = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
    assert {"gateway_api_keys", "hf_token"} <= secret
    injectors = ctype["injectors"]
    assert "env" not in injectors
    files = {k.split(".", 1)[1] for k in injectors["file"]}
    assert secret <= files
    for value in injectors["extra_vars"].values():
        assert value.startswith("{{ tower.filename.") and value.endswith(" }}"), value
    # The inventory variables that use the files name only the files' variables.
    inventory_vars = _load(AWX / "vars" / "gpuforge.yml")["gpuforge_awx_inventory_variables"]
    assert "{{ gpuforge_known_hosts_file }}" in inventory_vars["ansible_ssh_common_args"]
    assert "gpuforge_hf_token_file" in inventory_vars["model_store_hf_token"]
    (play,) = _load(AWX / "site.yml")
    for task in play["tasks"]:
        module = task.get("awx.awx.credential")
        if module is not None:
            assert task.get("no_log") is True, task["name"]


def test_execution_environment_definition_is_valid_and_pinned() -> None:
    from ansible_builder.ee_schema import validate_schema

    definition = _load(ROOT / "execution-environment.yml")
    validate_schema(definition)
    deps = definition["dependencies"]
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={version('ansible-core')}"
    assert deps["ansible_runner"]["package_pip"] == \
        f"ansible-runner=={version('ansible-runner')}"
    for key in ("galaxy", "python", "system"):
        assert (ROOT / deps[key]).is_file(), deps[key]
    # The collection's own EE metadata ships in its tarball with the files it names.
    meta = _load(ROOT / "meta" / "execution-environment.yml")
    ignored = set(_load(ROOT / "galaxy.yml")["build_ignore"])
    for path in meta["dependencies"].values():
        assert (ROOT / path).is_file() and path.split("/")[0] not in ignored, path


def test_ansible_builder_writes_a_build_context_from_the_definition(tmp_path: Path) -> None:
    """`ansible-builder create` accepts the definition: the Containerfile starts from the
    locally built base and installs the pinned ansible-core (the dist files it copies are
    made by scripts/ee-build.sh; empty stand-ins are enough to write the context)."""
    work = tmp_path / "root"
    (work / ".cache" / "ee" / "dist").mkdir(parents=True)
    for name in ("execution-environment.yml", "ee"):
        src = ROOT / name
        subprocess.run(["cp", "-r", str(src), str(work / name)], check=True)
    proc = subprocess.run([str(BIN / "ansible-builder"), "create", "-f",
                           "execution-environment.yml", "-c", str(tmp_path / "context"),
                           "--output-filename", "Containerfile"], cwd=work,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (tmp_path / "context" / "Containerfile").read_text(encoding="utf-8")
    assert 'ARG EE_BASE_IMAGE="localhost/gpuforge-ee-base:debian12"' in text
    assert f"ansible-core=={version('ansible-core')}" in text
    assert 'ARG PKGMGR="/usr/local/bin/gpuforge-ee-pkg"' in text
