"""`gpuforge check` on broken inventories: every problem found, each naming variable and file.

Each case under tests/fixtures/inventories/<case>/ carries `expected.yml`: the
(host, variable, file) triples the checker must report, no more and no fewer. The cases
are checked against the real roles plus the test double in tests/fixtures/roles/demo.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.compat_gate import host_compat_problems
from toolkit.inventory import SourcedValue, resolve
from toolkit.specs import (
    Problem,
    RoleRules,
    RoleSpecs,
    check_host,
    load_role_rules,
    load_role_specs,
)

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "fixtures" / "inventories"
FIXTURE_ROLES = ROOT / "tests" / "fixtures" / "roles"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "expected.yml").is_file())
# Cases whose hosts must run a profile made of these roles (required options apply).
PROFILE_ROLES = {"missing_required": ("demo",)}


@functools.cache
def _specs() -> tuple[RoleSpecs, RoleRules]:
    specs = load_role_specs(ROOT / "roles") | load_role_specs(FIXTURE_ROLES)
    rules = load_role_rules(ROOT / "roles") | load_role_rules(FIXTURE_ROLES)
    return specs, rules


def _check(case: str) -> list[Problem]:
    specs, rules = _specs()
    resolved = resolve([CASES_DIR / case / "hosts.yml"])
    problems: list[Problem] = []
    for host, hostvars in sorted(resolved.hosts.items()):
        problems += check_host(host, hostvars, specs, PROFILE_ROLES.get(case, ()), rules)
        problems += host_compat_problems(host, hostvars)  # as toolkit.check does
    return problems


def test_every_case_is_present() -> None:
    assert {"wrong_types", "unknown_variables", "bad_enums", "missing_required",
            "contradicting_pins", "plain_secrets"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_every_problem_is_found_and_named(case: str) -> None:
    expected = yaml.safe_load((CASES_DIR / case / "expected.yml").read_text())
    problems = _check(case)
    found = [(p.host, p.variable, p.source) for p in problems]
    unmatched = list(problems)
    for host, variable, file in expected:
        match = [p for p in unmatched if p.host == host and p.variable == variable
                 and (file in p.source if file else p.source == "")]
        assert match, f"{case}: no problem for {host} {variable} in {file}; got {found}"
        unmatched.remove(match[0])
        text = str(match[0])
        assert "_Ansible" not in text, "messages name plain types, not Ansible internals"
        assert text.startswith(f"{host}: {variable}: ")
        if file:
            assert f"(defined in {CASES_DIR / case}" in text and file in text
    assert not unmatched, f"{case}: unexpected problems: {[str(p) for p in unmatched]}"


def test_infinite_float_for_an_int_is_a_user_error() -> None:
    specs, rules = _specs()
    problems = check_host("h", {"base_apt_lock_timeout": SourcedValue(float("inf"), "x.yml")},
                          specs, (), rules)
    assert [str(p) for p in problems] == [
        "h: base_apt_lock_timeout: is inf, which is not a valid int (defined in x.yml)"]


def test_messages_say_what_is_wrong() -> None:
    msg = {(c, p.host, p.variable): p.message for c in CASES for p in _check(c)}
    assert "int" in msg[("wrong_types", "node1", "base_apt_lock_timeout")]
    assert "dict" in msg[("wrong_types", "node1", "base_proxy_env")]
    assert "float" in msg[("wrong_types", "node2", "demo_sources")]
    assert "did you mean base_extra_packages?" in msg[
        ("unknown_variables", "infer1", "base_extra_pakages")]
    assert "did you mean demo_port?" in msg[("unknown_variables", "infer1", "demo_prot")]
    assert "cpu, gpu" in msg[("bad_enums", "node1", "demo_mode")]
    assert "required by role demo" in msg[("missing_required", "node1", "demo_port")]
    assert "mutually exclusive" in msg[("contradicting_pins", "gpu1", "demo_url, demo_version")]
    assert "missing: demo_gpu_count" in msg[("contradicting_pins", "gpu2", "demo_mode")]
    assert "volta needs the proprietary module" in msg[
        ("contradicting_pins", "gpu3", "nvidia_driver_kernel_module vs gpuforge_gpu_generation")]
    assert "ansible-vault" in msg[("plain_secrets", "node1", "demo_api_key")]
    assert "lookup('ansible.builtin.env'" in msg[("plain_secrets", "node1", "demo_hf_token")]


def test_cli_reports_with_real_roles_and_exits_3(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.cli.app", "check", "-i",
         str(CASES_DIR / "wrong_types" / "hosts.yml")],
        capture_output=True, text=True,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "300",
             "GPUFORGE_STATE_DIR": str(tmp_path)},
        check=False, cwd=ROOT)
    assert proc.returncode == 3, proc.stderr
    assert "node1: base_apt_lock_timeout: is of type str and we were unable to convert to int" \
        in proc.stderr
    assert "(defined in " in proc.stderr and "group_vars/all/base.yml" in proc.stderr
    # demo_* belongs to no real role: site variables pass.
    assert "demo_port" not in proc.stderr


# --- generated values never crash the checker -------------------------------------------

yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["{{ x }}", "yes", "0644", "1e3", "[]", "~"]))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=10)


def _all_options() -> list[str]:
    specs, _ = _specs()
    return sorted(name for options in specs.values() for name in options)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_all_options()), yaml_values, min_size=1, max_size=8))
def test_generated_values_never_crash(values: dict[str, Any]) -> None:
    specs, rules = _specs()
    hostvars = {k: SourcedValue(v, "gen.yml") for k, v in values.items()}
    problems = check_host("h", hostvars, specs, tuple(specs), rules)
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.host == "h" and str(problem).startswith("h: ")
        assert "could not be validated" not in problem.message, problem
        assert "could not be applied" not in problem.message, problem


def _key_file_vars(path: Path) -> dict[str, SourcedValue]:
    return {"gateway_api_key_file": SourcedValue(str(path), "group_vars/all.yml")}


def test_a_key_file_must_exist_be_private_and_hold_a_key(tmp_path: Path) -> None:
    from toolkit.check import key_file_problems

    path = tmp_path / "api-key"
    missing = key_file_problems("h1", _key_file_vars(path))
    assert [(p.variable, p.source) for p in missing] == [
        ("gateway_api_key_file", "group_vars/all.yml")]
    assert "not a file on the controller" in missing[0].message
    path.write_text("k" * 32 + "\n")
    path.chmod(0o644)
    (shared,) = key_file_problems("h1", _key_file_vars(path))
    assert "readable by other users (mode 644); chmod 600" in shared.message
    path.chmod(0o600)
    assert key_file_problems("h1", _key_file_vars(path)) == []
    path.write_text("\n")
    (empty,) = key_file_problems("h1", _key_file_vars(path))
    assert "holds no key" in empty.message


def test_keys_in_key_files_are_scrubbed_from_what_a_run_shows(tmp_path: Path) -> None:
    from toolkit.check import key_file_secrets
    from toolkit.summary import scrub

    path = tmp_path / "api-key"
    path.write_text("first-key-0123456789abcdef\n\nsecond-key-0123456789abcdef\n")
    path.chmod(0o600)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"h1": {}, "h2": {}}, "vars": {"gateway_api_key_file": str(path)}}}))
    keys = key_file_secrets(resolve([inventory]))
    assert keys == ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]
    assert "first-key" not in scrub("Bearer first-key-0123456789abcdef failed", keys)


def test_the_fleet_credential_file_is_checked_and_scrubbed_like_a_key_file(tmp_path: Path) -> None:
    """gateway_fleet_key_file (front gateway -> host gateways) is a key like any other:
    private to its owner, and never shown in what a run prints."""
    from toolkit.check import key_file_problems, key_file_secrets
    from toolkit.summary import scrub

    path = tmp_path / "fleet-key"
    path.write_text("gf-fleet-0123456789abcdef0123\n")
    path.chmod(0o640)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"front": {}}, "vars": {"gateway_fleet_key_file": str(path)}}}))
    (loose,) = key_file_problems("front", resolve([inventory]).hosts["front"])
    assert loose.variable == "gateway_fleet_key_file" and "chmod 600" in loose.message
    path.chmod(0o600)
    keys = key_file_secrets(resolve([inventory]))
    assert keys == ["gf-fleet-0123456789abcdef0123"]
    assert "gf-fleet-0123" not in scrub("sent Bearer gf-fleet-0123456789abcdef0123", keys)


def test_a_broken_or_readable_key_store_is_refused_before_any_host(tmp_path: Path) -> None:
    """`gpuforge check --profile cpu-llm` reads the key store the gateway role will read: a
    malformed entry or a group-readable file is a problem naming the variable and file, exit 3."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"node1": {
        "ansible_host": "192.0.2.10"}}}}), encoding="utf-8")
    store = tmp_path / "api-keys.json"

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "toolkit.cli.app", "check", "-i", str(inventory),
             "--profile", "cpu-llm"], capture_output=True, text=True, check=False, cwd=ROOT,
            env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "300",
                 "GPUFORGE_STATE_DIR": str(tmp_path), "GPUFORGE_API_KEY": "gf-" + "k" * 30})

    store.write_text('{"keys": [{"name": "team", "sha256": "' + "0" * 64
                     + '", "max_concurrent": "4"}]}', encoding="utf-8")
    store.chmod(0o600)
    proc = check()
    assert proc.returncode == 3, proc.stderr
    assert f"node1: gateway_key_store: key store {store}: entry 0 (team): max_concurrent must " \
           "be a whole number" in proc.stderr, proc.stderr
    store.chmod(0o640)
    proc = check()
    assert proc.returncode == 3 and f"key store {store} is readable by other users (mode 640)" \
        in proc.stderr, proc.stderr
    store.write_text('{"keys": []}', encoding="utf-8")
    store.chmod(0o600)
    assert "key store" not in check().stderr
