"""The bad-input campaign: what a careful user and an attacker would feed gpuforge.

Every case runs the real CLI (in process, like tests/unit/test_cli.py, or as a process with
a time limit where a hang or a process-wide setting is the point) and asserts the
documented exit code (3 invalid input, 5 missing prerequisite), that the message names the
variable or file, that no traceback or "internal error" appears and, for secrets, that the
value never reaches the output.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolkit.cli.app import main

HOSTS = "all:\n  hosts:\n    h1: {ansible_host: 192.0.2.1}\n"
GPUFORGE = [sys.executable, "-m", "toolkit.cli.app"]
SECRET = "s3cr3t-Pa55word-zz9"


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    expect: tuple[str, ...]  # in stderr ({inv}: the inventory directory)
    code: int = 3
    args: tuple[str, ...] = ("check", "-i", "{inv}/hosts.yml")
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # never in stdout or stderr
    setup: Callable[[Path], None] | None = None
    process: bool = False  # run as its own process (hangs, process-wide vault secrets)


def gv(text: str, hosts: str = HOSTS) -> dict[str, str]:
    return {"hosts.yml": hosts, "group_vars/all.yml": text}


def var(name: str, value: str, message: str, code: int = 3) -> Case:
    """One variable in group_vars/all.yml; the message names it and the file."""
    return Case(f"{name}={value}"[:60], gv(f"{name}: {value}\n"),
                (f"h1: {name}", message, "{inv}/group_vars/all.yml"), code=code)


BOMB = "".join(f"      {chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9)
               + "]\n" for i in range(8))
BOMB = "all:\n  hosts:\n    h1:\n      a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + BOMB


def _sparse(name: str, size: int) -> Callable[[Path], None]:
    def make(inv: Path) -> None:
        path = inv / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            fh.write(HOSTS + "#")
            fh.truncate(size)
    return make


def _chmod(name: str, mode: int) -> Callable[[Path], None]:
    return lambda inv: (inv / name).chmod(mode)


def _history(content: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda inv: content(inv / "state" / "history.sqlite3")


def _random_bytes(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * 16)


def _foreign(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (n INTEGER)")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()


def _vault(password: str, name: str, value: str) -> Callable[[Path], None]:
    """group_vars/all.yml with `name` encrypted inline under `password`."""
    def make(inv: Path) -> None:
        from ansible.parsing.vault import VaultLib, VaultSecret

        vault = VaultLib([("default", VaultSecret(password.encode()))])
        blob = vault.encrypt(value).decode()
        body = "".join(f"  {line}\n" for line in blob.splitlines())
        (inv / "group_vars" / "all.yml").write_text(f"{name}: !vault |\n{body}")
        (inv / "right.pw").write_text("right\n")
        (inv / "wrong.pw").write_text("wrong\n")
        (inv / "empty.pw").write_text("")
    return make


def _vault_file(inv: Path) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(b"right"))])
    (inv / "group_vars" / "all.yml").write_bytes(vault.encrypt("validate_api_key: x\n"))
    (inv / "wrong.pw").write_text("wrong\n")


KEY_HOSTS = ("all:\n  hosts:\n    h1:\n      ansible_host: 192.0.2.1\n"
             "      gateway_api_key_file: '{inv}/keys/api.key'\n")

CASES: list[Case] = [
    # --- malformed and hostile YAML ---
    Case("yaml-syntax", {"hosts.yml": "all:\n  hosts:\n    h1: {ansible_host: [\n"},
         ("{inv}/hosts.yml", "is not valid YAML", "line")),
    Case("yaml-tabs", {"hosts.yml": "all:\n\thosts:\n\t\th1:\n"},
         ("{inv}/hosts.yml", "is not valid YAML")),
    Case("yaml-duplicate-key", {"hosts.yml": "all:\n  hosts:\n    h1:\n      a: 1\n      a: 2\n"},
         ("{inv}/hosts.yml", "key 'a' is defined twice (lines 4 and 5)")),
    Case("yaml-duplicate-key-group-vars", gv("gateway_port: 443\ngateway_port: 8443\n"),
         ("{inv}/group_vars/all.yml", "key 'gateway_port' is defined twice")),
    Case("yaml-alias-bomb", {"hosts.yml": BOMB}, ("{inv}/hosts.yml", "alias bomb"),
         process=True),
    Case("yaml-alias-bomb-group-vars", gv(BOMB.replace("all:\n  hosts:\n    h1:\n", "x:\n")),
         ("{inv}/group_vars/all.yml", "alias bomb"), process=True),
    Case("yaml-syntax-group-vars", gv("gateway_port: [443\n"),
         ("variables file {inv}/group_vars/all.yml is not valid YAML",)),
    Case("yaml-group-vars-not-a-mapping", gv("- a\n- b\n"),
         ("variables file {inv}/group_vars/all.yml is not a mapping",)),
    Case("yaml-deep-nesting", gv("x: " + "[" * 3000 + "]" * 3000 + "\n"),
         ("{inv}/group_vars/all.yml",)),
    Case("yaml-binary", {"hosts.yml": HOSTS, "group_vars/all.yml": "x: \udcff\n"},
         ("{inv}/group_vars/all.yml", "not valid YAML")),
    Case("yaml-python-object-tag",
         gv('x: !!python/object/apply:os.system ["touch /tmp/gpuforge-pwned"]\n'),
         ("{inv}/group_vars/all.yml", "python/object")),
    Case("yaml-json-syntax", {"hosts.json": '{"all": {"hosts": {"h1": {]}}'},
         ("{inv}/hosts.json", "is not valid YAML"), args=("check", "-i", "{inv}/hosts.json")),
    Case("inventory-empty", {"hosts.yml": ""}, ("{inv}/hosts.yml", "has no hosts")),
    Case("inventory-missing", {}, ("{inv}/nope.yml", "does not exist"),
         args=("check", "-i", "{inv}/nope.yml")),
    Case("huge-inventory-50MB", {}, ("{inv}/hosts.yml", "52.4 MB", "up to 10 MiB"),
         setup=_sparse("hosts.yml", 50 * 1024 * 1024), process=True),
    Case("huge-group-vars", {"hosts.yml": HOSTS}, ("{inv}/group_vars/all.yml", "MB"),
         setup=_sparse("group_vars/all.yml", 20 * 1024 * 1024)),
    # --- wrong types and ranges (ranges: toolkit/ranges.py) ---
    var("gateway_port", "0", "out of range (must be from 1 to 65535)"),
    var("gateway_port", "70000", "out of range (must be from 1 to 65535)"),
    var("gateway_port", "-1", "out of range"),
    var("gateway_port", "https", "int"),
    var("vllm_port", "65536", "out of range"),
    var("gateway_rate_limit_rps", "-5", "out of range (must be from 1)"),
    var("gateway_rate_limit_rps", "0", "out of range"),
    var("gateway_rate_limit_burst", "-1", "out of range (must be from 0)"),
    var("model_store_free_margin_mb", "-100", "out of range"),
    var("model_store_download_concurrency", "1001", "out of range"),
    var("model_store_download_rate_limit", "-1", "out of range (must be from 0 to 1e+12)"),
    Case("strategy-flag", {"hosts.yml": HOSTS}, ("--strategy is 'fast'", "linear, mitogen"),
         args=("apply", "-i", "{inv}/hosts.yml", "--yes", "--strategy", "fast")),
    Case("strategy-setting", {"hosts.yml": HOSTS}, ("GPUFORGE_STRATEGY is 'fast'",),
         args=("apply", "-i", "{inv}/hosts.yml", "--yes"), env={"GPUFORGE_STRATEGY": "fast"}),
    var("model_store_verify_deep", "sometimes", "model_store_verify_deep"),
    var("gateway_max_body_size", "lots", "not a size"),
    var("gateway_max_body_size", "-1m", "not a size"),
    var("llama_cpp_parallel", "0", "out of range"),
    var("llama_cpp_threads", "-2", "out of range"),
    var("vllm_gpu_memory_utilization", "1.5", "out of range"),
    var("validate_max_tokens", "0", "out of range"),
    var("ollama_pull_timeout", "0", "out of range"),
    var("gateway_tls_days", "100000", "out of range"),
    var("base_apt_lock_timeout", ".inf", "not a valid int"),
    Case("llama-instance-port", gv("llama_cpp_instances:\n  - {name: a, model: m, port: 99999}\n"),
         ("h1: llama_cpp_instances[0].port: is 99999, out of range", "{inv}/group_vars/all.yml")),
    # --- vault, with and without a password ---
    Case("vault-inline-no-password-wrong-type", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("h1: gateway_api_keys: is vault-encrypted but must be of type list",
          "{inv}/group_vars/all.yml"), setup=_vault("right", "gateway_api_keys", "k")),
    Case("vault-inline-wrong-password", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("h1: validate_api_key: cannot be decrypted", "{inv}/group_vars/all.yml"),
         env={"ANSIBLE_VAULT_PASSWORD_FILE": "{inv}/wrong.pw"},
         setup=_vault("right", "validate_api_key", "k"), process=True),
    Case("vault-password-file-missing", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("ANSIBLE_VAULT_PASSWORD_FILE names {inv}/missing.pw",), code=5,
         env={"ANSIBLE_VAULT_PASSWORD_FILE": "{inv}/missing.pw"},
         setup=_vault("right", "validate_api_key", "k"), process=True),
    Case("vault-password-file-empty", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("ANSIBLE_VAULT_PASSWORD_FILE {inv}/empty.pw",),
         env={"ANSIBLE_VAULT_PASSWORD_FILE": "{inv}/empty.pw"},
         setup=_vault("right", "validate_api_key", "k"), process=True),
    Case("vault-file-no-password", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("variables file {inv}/group_vars/all.yml is vault-encrypted",), code=5,
         setup=_vault_file),
    Case("vault-file-wrong-password", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("cannot read variables file {inv}/group_vars/all.yml", "Decryption failed"),
         env={"ANSIBLE_VAULT_PASSWORD_FILE": "{inv}/wrong.pw"}, setup=_vault_file,
         process=True),
    Case("vault-list-type", {"hosts.yml": HOSTS, "group_vars/all.yml": ""},
         ("h1: gateway_api_keys: is vault-encrypted but must be of type list",),
         env={"ANSIBLE_VAULT_PASSWORD_FILE": "{inv}/right.pw"},
         setup=_vault("right", "gateway_api_keys", "k"), process=True),
    # --- key files: wrong modes, missing, empty, inside the inventory directory ---
    Case("key-file-missing", {"hosts.yml": KEY_HOSTS},
         ("h1: gateway_api_key_file: {inv}/keys/api.key is not a file",)),
    Case("key-file-mode-644", {"hosts.yml": KEY_HOSTS, "keys/api.key": SECRET + "\n"},
         ("h1: gateway_api_key_file:", "readable by other users (mode 644)"),
         setup=_chmod("keys/api.key", 0o644), absent=(SECRET,)),
    Case("key-file-empty", {"hosts.yml": KEY_HOSTS, "keys/api.key": "\n"},
         ("h1: gateway_api_key_file: {inv}/keys/api.key holds no key",),
         setup=_chmod("keys/api.key", 0o600)),
    Case("key-file-is-a-directory", {"hosts.yml": KEY_HOSTS, "keys/api.key/x": ""},
         ("{inv}/keys/api.key is not a file",)),
    Case("key-in-inventory-dir-by-name", {"hosts.yml": HOSTS, "api-key": SECRET + "\n"},
         ("inventory directory {inv} holds api-key", "move {inv}/api-key"),
         args=("check", "-i", "{inv}", "--json"), absent=(SECRET,)),
    Case("ssh-key-in-inventory-dir", {"hosts.yml": HOSTS, "id_ed25519":
                                      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA\n"},
         ("holds id_ed25519",), args=("check", "-i", "{inv}"), absent=("b3BlbnNzaA",)),
    Case("token-file-in-inventory-dir-by-content", {"hosts.yml": HOSTS,
                                                    "hosts2": "Zk8dQ2v9XbR4tL7mN1pW3sY6\n"},
         ("holds hosts2", "looks like a key"), args=("check", "-i", "{inv}"),
         absent=("Zk8dQ2v9XbR4tL7mN1pW3sY6",)),
    Case("key-in-inventory-dir-for-facts", {"hosts.yml": HOSTS, "token": SECRET + "\n"},
         ("inventory directory {inv} holds token",), args=("facts", "-i", "{inv}"),
         absent=(SECRET,)),
    Case("huge-inventory-for-endpoints", {}, ("{inv}/hosts.yml", "MB"),
         args=("endpoints", "-i", "{inv}/hosts.yml", "--json"),
         setup=_sparse("hosts.yml", 30 * 1024 * 1024)),
    Case("pem-in-inventory-dir", {"hosts.yml": HOSTS, "gateway.pem": "x\n"},
         ("holds gateway.pem",), args=("check", "-i", "{inv}")),
    # --- traversal in every name ---
    Case("sandbox-down-traversal", {}, ("--name: '../../../../..' is not a safe name",),
         args=("sandbox", "down", "--name", "../../../../..")),
    Case("sandbox-up-traversal", {}, ("--name: '../x' is not a safe name",),
         args=("sandbox", "up", "--name", "../x")),
    Case("sandbox-down-slash", {}, ("--name: 'a/b'",), args=("sandbox", "down", "--name", "a/b")),
    Case("run-id-above-2^63", {}, ("run id '9223372036854775808' is not a run id",),
         args=("runs", "show", "9223372036854775808")),
    Case("run-id-negative", {}, ("run id '-1' is not a run id",),
         args=("runs", "show", "--", "-1")),
    Case("run-id-not-a-number", {}, ("run id 'abc' is not a run id",),
         args=("runs", "show", "abc")),
    Case("report-run-id-huge", {}, ("is not a run id",),
         args=("report", "99999999999999999999999")),
    Case("model-name-traversal", gv("model_store_models: ['../../etc']\n"),
         ("h1: model_store_models: [0]: '../../etc' is not a safe name",
          "{inv}/group_vars/all.yml")),
    Case("catalog-model-traversal", gv("model_store_overrides: {'../evil': {revision: r1}}\n"),
         ("h1: model_store_overrides: model '../evil' is not a safe name",)),
    Case("revision-traversal", gv("model_store_overrides: {m1: {revision: ../../x}}\n"),
         ("h1: model_store_overrides: m1.revision: '../../x' is not a safe name",)),
    Case("file-name-traversal",
         gv("model_store_overrides: {m1: {files: [{name: ../../../etc/shadow}]}}\n"),
         ("h1: model_store_overrides: m1.files[0].name:", "not a safe relative path")),
    Case("instance-name-traversal", gv("llama_cpp_instances:\n  - {name: ../x, model: m}\n"),
         ("h1: llama_cpp_instances: [0].name: '../x' is not a safe name",)),
    Case("instance-model-traversal", gv("llama_cpp_instances:\n  - {name: a, model: ../m}\n"),
         ("h1: llama_cpp_instances: [0].model: '../m' is not a safe name",)),
    Case("ollama-model-traversal", gv("ollama_models:\n  - {name: ../../x}\n"),
         ("h1: ollama_models: [0].name: '../../x' is not a valid Ollama model name",)),
    Case("host-name-traversal", {"hosts.yml": "all:\n  hosts:\n    ../../etc/cron.d/x:\n"},
         ("../../etc/cron.d/x: inventory_hostname:", "not a safe name", "{inv}/hosts.yml")),
    Case("model-path-spaces",
         gv("llama_cpp_instances:\n  - {name: a, model_path: /srv/m.gguf --rpc 10.0.0.1:1}\n"),
         ("h1: llama_cpp_instances: [0].model_path:", "without spaces")),
    Case("model-path-relative", gv("llama_cpp_instances:\n  - {name: a, model_path: m.gguf}\n"),
         ("[0].model_path: 'm.gguf' must be an absolute path",)),
    Case("model-path-dotdot",
         gv("llama_cpp_instances:\n  - {name: a, model_path: /srv/../etc/x}\n"),
         ("[0].model_path:",)),
    Case("gateway-address-shell", gv("validate_gateway_address: '127.0.0.1; rm -rf /'\n"),
         ("h1: validate_gateway_address:", "not an IP address or a DNS name")),
    Case("gateway-address-substitution", gv("validate_gateway_address: '$(id)'\n"),
         ("h1: validate_gateway_address: '$(id)'",)),
    # --- markup in every string: printed as written, never interpreted ---
    Case("markup-in-inventory-path", {}, ("inventory {inv}/x[/bold]y does not exist",),
         args=("check", "-i", "{inv}/x[/bold]y")),
    Case("markup-model-name", gv("model_store_models: ['[/INST]']\n"),
         ("h1: model_store_models: [0]: '[/INST]' is not a safe name",)),
    Case("markup-in-value", gv("gateway_port: '[/red]'\n"), ("h1: gateway_port:", "[/red]")),
    Case("markup-in-directory", {"a[/b]/hosts.yml": HOSTS,
                                 "a[/b]/group_vars/all.yml": "gateway_port: 0\n"},
         ("{inv}/a[/b]/group_vars/all.yml",), args=("check", "-i", "{inv}/a[/b]/hosts.yml")),
    Case("markup-sandbox-name", {}, ("--name: '[/x]'",),
         args=("sandbox", "down", "--name", "[/x]")),
    Case("markup-profile", {"hosts.yml": HOSTS}, ("unknown profile '[/p]'",),
         args=("plan", "--profile", "[/p]", "-i", "{inv}/hosts.yml")),
    Case("markup-in-json-check", gv("gateway_port: '[/b]'\n"), ("h1: gateway_port:",),
         args=("check", "-i", "{inv}/hosts.yml", "--json")),
    # --- corrupt history databases ---
    Case("history-random-bytes", {}, ("run history {inv}/state/history.sqlite3",
                                      "not an SQLite database"),
         args=("runs", "list"), setup=_history(_random_bytes)),
    Case("history-foreign", {}, ("another program's database",), args=("runs", "show", "1"),
         setup=_history(_foreign)),
    Case("history-newer", {}, ("has schema 99, newer than this gpuforge",),
         args=("runs", "list", "--json"), setup=_history(_newer)),
    Case("history-is-a-directory", {"state/history.sqlite3/x": ""}, ("is not a file",),
         args=("runs", "list")),
    Case("history-corrupt-on-plan", {"hosts.yml": HOSTS},
         ("run history {inv}/state/history.sqlite3",),
         args=("plan", "-i", "{inv}/hosts.yml"), setup=_history(_random_bytes)),
    # --- secrets in plain text ---
    var("ansible_become_password", SECRET, "is a secret in plain text"),
    var("ansible_password", SECRET, "is a secret in plain text"),
    var("ansible_ssh_pass", SECRET, "is a secret in plain text"),
    var("gateway_api_keys", f"[{SECRET}]", "is a secret in plain text"),
    Case("proxy-credentials", gv(f"base_proxy_env: {{https_proxy: 'http://bob:{SECRET}@p:3128'}}\n"),
         ("h1: base_proxy_env: https_proxy: holds credentials in a URL", "ansible-vault"),
         absent=(SECRET,)),
    Case("vllm-env-token", gv(f"vllm_env: {{HF_TOKEN: {SECRET}}}\n"),
         ("h1: vllm_env: HF_TOKEN: is a secret in plain text",), absent=(SECRET,)),
    Case("ollama-env-key", gv(f"ollama_env: {{OLLAMA_API_KEY: {SECRET}}}\n"),
         ("h1: ollama_env: OLLAMA_API_KEY: is a secret in plain text",), absent=(SECRET,)),
    Case("vllm-env-url-credentials",
         gv(f"vllm_env: {{PIP_INDEX_URL: 'https://u:{SECRET}@pypi.example/simple'}}\n"),
         ("h1: vllm_env: PIP_INDEX_URL: holds credentials",), absent=(SECRET,)),
]


def _fill(text: str, inv: Path) -> str:
    return text.replace("{inv}", str(inv))


def _run(case: Case, inv: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    argv = [_fill(a, inv) for a in case.args]
    env = {k: _fill(v, inv) for k, v in case.env.items()}
    if case.process:
        proc = subprocess.run([*GPUFORGE, *argv], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=120, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_named_with_its_exit_code(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    monkeypatch.setenv("GPUFORGE_STATE_DIR", str(inv / "state"))
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    for name, text in case.files.items():
        path = inv / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(text, inv), encoding="utf-8", errors="surrogateescape")
    if case.setup:
        case.setup(inv)
    code, out, err = _run(case, inv, capsys, monkeypatch)
    assert code == case.code, err
    assert "Traceback" not in err and "internal error" not in err, err
    for expected in case.expect:
        assert _fill(expected, inv) in err, err
    for secret in case.absent:
        assert secret not in out and secret not in err, "a secret reached the output"


def test_inline_vault_without_password_is_judged_encrypted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CI's check stage has no vault password: an inline !vault value (once a crash, exit 1)
    is judged still encrypted, secret-named and in cross-field rules alike."""
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(HOSTS)
    monkeypatch.setenv("GPUFORGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    _vault("right", "validate_api_key", "k")(inv)
    with (inv / "group_vars" / "all.yml").open("a") as fh:
        fh.write("validate_gateway_address: 127.0.0.1\n")
    assert main(["check", "-i", str(inv / "hosts.yml")]) == 0
    assert "ok: 1 host(s), no problems" in capsys.readouterr().err


def test_campaign_size() -> None:
    """The issue asks for at least 60 cases; the closing note quotes this count."""
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


def test_sandbox_down_with_traversal_touches_nothing_outside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`sandbox down --name ../../canary` once removed <state>/sandbox/../../canary, as root."""
    state = tmp_path / "deep" / "state"
    (state / "sandbox").mkdir(parents=True)
    canary = tmp_path / "deep" / "canary"
    canary.mkdir()
    (canary / "keep").write_text("precious")
    monkeypatch.setenv("GPUFORGE_STATE_DIR", str(state))
    for name in ("../../canary", "../../deep/canary", "..", "../..", str(canary)):
        assert main(["sandbox", "down", "--name", name]) == 3
        assert "is not a safe name" in capsys.readouterr().err
    assert (canary / "keep").read_text() == "precious"
    assert (state / "sandbox").is_dir()


def test_markup_in_history_is_printed_as_written(
        state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Host names, inventories and a model's answer (`[/INST]`) in tables and lines."""
    from toolkit.history import History
    from toolkit.summary import Failure, HostCounts, RunSummary, TaskTiming

    history = History()
    run_id = history.start(command="apply", inventory="/inv/[/bold]x.yml", profile="[/p]",
                           playbook=None, limit=None, tags=None, check_mode=False,
                           started_at="t0")
    history.finish(run_id, status="failed", rc=2, exit_code=2, ended_at="t1", duration_s=1.0,
                   artifact_dir=None, summary=RunSummary(
                       {"[/b]": HostCounts(failed=1)},
                       [Failure("[/b]", "Ask [/INST]", "answer: [/INST] [bold]", "failed")],
                       [TaskTiming("[/b]", "[/t]", "r", "a", "t0", 1.0, "failed")], [], [],
                       []))
    assert main(["runs", "list"]) == 0
    err = capsys.readouterr().err
    assert "[/bold]x.yml" in err and "[/p]" in err
    assert main(["runs", "show", str(run_id)]) == 0
    err = capsys.readouterr().err
    assert "answer: [/INST] [bold]" in err and "[/b]" in err and "[/t]" in err
    assert "Traceback" not in err


def test_progress_table_shows_markup_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    from toolkit.console import err
    from toolkit.progress import Progress

    err().print(Progress("run [/x]", quiet=True)._table(None))
    assert "run [/x]" in capsys.readouterr().err
