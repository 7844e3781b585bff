"""The ansible-runner adapter, exercised with real ansible-playbook runs on local hosts."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from toolkit.artifacts import scrub_artifacts
from toolkit.errors import ExitCode
from toolkit.run_env import allowed_env, secret_values
from toolkit.runner import RunRequest, outcome_code, run_playbook
from toolkit.summary import HostCounts, RunSummary

CANARY = "hf_CANARYtoken0123456789"


def write_local_inventory(tmp_path: Path, hosts: tuple[str, ...] = ("h1", "h2")) -> Path:
    inv = tmp_path / "inventory.ini"
    lines = [f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}"
             for h in hosts]
    inv.write_text("\n".join(lines) + "\n")
    return inv


def write_playbook(tmp_path: Path, tasks: str) -> Path:
    pb = tmp_path / "play.yml"
    pb.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return pb


def sleep_request(tmp_path: Path, seconds: int) -> RunRequest:
    """One local host sleeping `seconds` in a single task."""
    tasks = f"""
    - name: Sleep a long time
      ansible.builtin.command: sleep {seconds}
      changed_when: false
"""
    return RunRequest(playbook=write_playbook(tmp_path, tasks),
                      inventories=[write_local_inventory(tmp_path, ("h1",))])


def test_allowed_env_keeps_only_what_ansible_needs() -> None:
    base = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "HF_TOKEN": "t", "LC_ALL": "C",
            "ANSIBLE_FORKS": "5", "RANDOM_VAR": "y"}
    env = {**base, "ANSIBLE_STDOUT_CALLBACK": "awx_display", "PATH": "/venv/bin:/bin"}
    out = allowed_env(env, base)
    assert "AWS_SECRET_ACCESS_KEY" not in out and "RANDOM_VAR" not in out
    assert out["PATH"] == "/venv/bin:/bin"  # changed by runner/us: kept
    assert {"HF_TOKEN", "LC_ALL", "ANSIBLE_FORKS", "ANSIBLE_STDOUT_CALLBACK"} <= set(out)
    assert secret_values(out) == ["t"]


@pytest.mark.parametrize(("status", "rc", "counts", "code"), [
    ("successful", 0, HostCounts(ok=3), ExitCode.OK),
    ("failed", 2, HostCounts(failed=1), ExitCode.FAILED_HOSTS),
    ("failed", 4, HostCounts(unreachable=1, failed=1), ExitCode.UNREACHABLE),
    ("canceled", 1, HostCounts(failed=1), ExitCode.CANCELLED),
    ("failed", 1, HostCounts(), ExitCode.INTERNAL),
])
def test_outcome_codes(status: str, rc: int, counts: HostCounts, code: ExitCode) -> None:
    summary = RunSummary({"h": counts}, [], [], [], [], [])
    assert outcome_code(status, rc, summary) is code


def test_real_run_counts_failures_reboot_and_secrets(
        tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setenv("UNRELATED_CLOUD_SECRET", "must-not-reach-ansible")
    tasks = """
    - name: Say hello
      ansible.builtin.command: echo hello
      changed_when: true
    - name: Echo the token without no_log (a careless role)
      ansible.builtin.command: "echo {{ lookup('ansible.builtin.env', 'HF_TOKEN') }}"
      changed_when: false
    - name: Show the environment ansible got
      ansible.builtin.command: "echo {{ lookup('ansible.builtin.env', 'UNRELATED_CLOUD_SECRET') }}"
      register: leaked
      changed_when: false
    - name: Need a reboot on h1
      ansible.builtin.set_fact:
        demo_reboot_required: "{{ inventory_hostname == 'h1' }}"
    - name: Break h2
      ansible.builtin.fail:
        msg: "h2 is broken on purpose"
      when: inventory_hostname == 'h2'
    - name: Fail on the secret itself
      ansible.builtin.fail:
        msg: "bad token {{ lookup('ansible.builtin.env', 'HF_TOKEN') }}"
      when: inventory_hostname == 'h1'
      ignore_errors: true
"""
    request = RunRequest(playbook=write_playbook(tmp_path, tasks),
                         inventories=[write_local_inventory(tmp_path)])
    result = run_playbook(request, ident="t1")
    summary = result.summary
    assert result.status == "failed" and result.exit_code() is ExitCode.FAILED_HOSTS
    assert summary.hosts["h1"].failed == 0 and summary.hosts["h2"].failed == 1
    assert summary.hosts["h1"].changed == 1 and summary.hosts["h1"].ignored == 1
    assert [(f.host, f.task, f.message) for f in summary.failures] == [
        ("h2", "Break h2", "h2 is broken on purpose")]
    assert summary.reboot_required == ["h1"]
    assert {t.task for t in summary.timings} >= {"Say hello", "Break h2"}
    assert all(t.duration_s >= 0 for t in summary.timings)
    # The env allow-list kept the unrelated secret away from ansible-playbook.
    leaked = [t for t in summary.timings if t.task == "Show the environment ansible got"]
    assert leaked and leaked[0].status == "ok"
    artifacts = Path(result.artifact_dir)
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert files, "runner artifacts are kept"
    blob = "\n".join(p.read_text(errors="replace") for p in files)
    assert CANARY not in blob
    assert "must-not-reach-ansible" not in blob
    assert "hello" in blob
    assert not any(p.name in ("envvars", "extravars", "passwords") for p in files)
    # Private data dirs are removed after each run.
    assert not list((state_dir / "tmp").glob("run-t1-*"))


def test_cancel_stops_the_run_quickly(tmp_path: Path, state_dir: Path) -> None:
    request = sleep_request(tmp_path, 121)
    cancel = threading.Event()
    threading.Timer(3.0, cancel.set).start()
    t0 = time.monotonic()
    result = run_playbook(request, ident="t2", cancel=cancel)
    assert time.monotonic() - t0 < 30
    assert result.cancelled and result.exit_code() is ExitCode.CANCELLED
    # Nothing of the run is left behind: ansible's workers live in their own process
    # groups, and an orphaned worker would go on changing the host after "cancelled".
    time.sleep(1)
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline")
                 if b"sleep\x00121" in _read(p)]
    assert leftovers == []


def _alive(proc_dir: Path) -> bool:
    """A process that runs (a zombie waiting for its reaper has stopped)."""
    stat = _read(proc_dir / "stat")
    return bool(stat) and stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_stops_before_any_host_are_explained(tmp_path: Path, state_dir: Path) -> None:
    pb = tmp_path / "broken.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - name: x\n      no_such_module_here: {}\n")
    result = run_playbook(RunRequest(playbook=pb, inventories=[write_local_inventory(tmp_path)]),
                          ident="t3")
    assert result.exit_code() is ExitCode.INTERNAL
    assert any("no_such_module_here" in w for w in result.summary.warnings)


def test_scrub_artifacts_rewrites_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "stdout"
    f.write_text(f"token={CANARY}\n")
    scrub_artifacts(tmp_path, [CANARY])
    assert CANARY not in f.read_text()


def test_secret_env_reaches_ansible_but_no_command_line_or_artifact(
        tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import json

    keys = "gfcanary-first-0123456789,gfcanary-second-0123456789"
    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setenv("GPUFORGE_API_KEYS", keys)
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")  # a user's override: undone
    ps_out = tmp_path / "ps.txt"
    digest = hashlib.sha256(CANARY.encode()).hexdigest()
    tasks = f"""
    - name: The roles still read the secret from the environment
      ansible.builtin.assert:
        that: "lookup('ansible.builtin.env', 'HF_TOKEN') | hash('sha256') == '{digest}'"
        quiet: true
    - name: Take the process list while ansible-playbook runs
      ansible.builtin.shell: "ps -eo args > {ps_out}"
      changed_when: false
    - name: Host keys are checked
      ansible.builtin.assert:
        that:
          - "lookup('ansible.builtin.env', 'ANSIBLE_HOST_KEY_CHECKING') == 'True'"
          - "'StrictHostKeyChecking=yes' in lookup('ansible.builtin.env', 'ANSIBLE_SSH_ARGS')"
        quiet: true
"""
    request = RunRequest(playbook=write_playbook(tmp_path, tasks),
                         inventories=[write_local_inventory(tmp_path, ("h1",))])
    result = run_playbook(request, ident="t5")
    assert result.exit_code() is ExitCode.OK, result.summary.failures
    processes = ps_out.read_text()
    assert "ansible-playbook" in processes  # the list was taken during the run
    secrets = [CANARY, keys, *keys.split(",")]
    assert not any(s in processes for s in secrets)
    command = json.loads((Path(result.artifact_dir) / "command").read_text())
    assert not {"HF_TOKEN", "GPUFORGE_API_KEYS"} & set(command["env"])
    assert command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert f"GlobalKnownHostsFile={state_dir / 'known_hosts'}" in command["env"][
        "ANSIBLE_SSH_ARGS"]
    assert (state_dir / "known_hosts").stat().st_mode & 0o777 == 0o600
    # Nothing written while the run was going holds a secret (not only after the scrub).
    for path in [*Path(result.artifact_dir).rglob("*"), *state_dir.rglob("*")]:
        if path.is_file():
            assert not any(s in path.read_text(errors="replace") for s in secrets), path


def test_secret_file_is_gone_once_ansible_started(tmp_path: Path) -> None:
    import json
    import subprocess

    from toolkit.run_env import SECRET_EXEC

    secret_file = tmp_path / "secret-env.json"
    secret_file.write_text(json.dumps({"HF_TOKEN": CANARY}))
    proc = subprocess.run(
        [sys.executable, str(SECRET_EXEC), str(secret_file), "--", "sh", "-c",
         'test "$HF_TOKEN" = "$1" && echo same', "sh", CANARY],
        capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "same", proc.stderr
    assert not secret_file.exists()


def test_vault_values_are_secrets(tmp_path: Path) -> None:
    """Values of vault-encrypted inventory variables are scrubbed like env secrets."""
    import subprocess

    password = tmp_path / "vault-pass"
    password.write_text("correct horse battery staple\n")
    vaulted = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-vault"), "encrypt_string",
         "--vault-password-file", str(password), "gfcanary-vault-0123456789",
         "--name", "gateway_api_keys_extra"],
        capture_output=True, text=True, check=True).stdout
    inv = tmp_path / "inv"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    (inv / "host_vars" / "h1.yml").write_text(vaulted)
    script = (
        "import sys; from pathlib import Path; from toolkit.inventory import resolve; "
        "from toolkit.run_env import vault_values; "
        "r = resolve([Path(sys.argv[1])]); "
        "print(vault_values(v for h in r.hosts.values() for v in h.values()))")
    for env_password, expected in ((str(password), "['gfcanary-vault-0123456789']"),
                                   (None, "[]")):
        env = {k: v for k, v in __import__("os").environ.items()
               if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
        if env_password:
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = env_password
        proc = subprocess.run([sys.executable, "-c", script, str(inv)], env=env,
                              capture_output=True, text=True, check=False)
        assert proc.stdout.strip().splitlines()[-1:] == [expected], proc.stderr[-2000:]


def test_sigkilled_gpuforge_leaves_no_secret_and_no_ansible_running(
        tmp_path: Path, state_dir: Path) -> None:
    """kill -9 of gpuforge mid-task: ansible-playbook stops too (parent-death signal), and
    nothing it left behind holds the secret (no post-run scrub ever ran)."""
    import os
    import signal
    import subprocess

    marker = f"{os.getpid() % 1000 + 131}"
    tasks = f"""
    - name: Use the secret, then sleep in the task
      ansible.builtin.shell: "test -n \\"$HF_TOKEN\\" && sleep {marker}"
      environment:
        HF_TOKEN: "{{{{ lookup('ansible.builtin.env', 'HF_TOKEN') }}}}"
      no_log: true
      changed_when: false
    - name: Never reached
      ansible.builtin.file:
        path: "{tmp_path / 'reached'}"
        state: touch
"""
    playbook = write_playbook(tmp_path, tasks)
    inventory = write_local_inventory(tmp_path, ("h1",))
    code = ("import sys; from pathlib import Path; "
            "from toolkit.runner import RunRequest, run_playbook; "
            "run_playbook(RunRequest(playbook=Path(sys.argv[1]), "
            "inventories=[Path(sys.argv[2])]), ident='t9')")
    env = {**os.environ, "HF_TOKEN": CANARY, "GPUFORGE_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(playbook), str(inventory)],
                            env=env)
    needle = f"sleep\x00{marker}".encode()
    try:
        while not any(needle in _read(p) for p in Path("/proc").glob("[0-9]*/cmdline")):
            assert proc.poll() is None, "the run ended before its task started"
            time.sleep(0.2)
        ours = [p.parent for p in Path("/proc").glob("[0-9]*/cmdline")
                if str(playbook).encode() in _read(p)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 120  # a bound on the wait, not a speed check
        while any(_alive(p) for p in ours) and time.monotonic() < deadline:
            time.sleep(0.2)  # ansible-playbook got SIGTERM from the kernel: it stops
        assert ours and not any(_alive(p) for p in ours), "ansible-playbook outlived gpuforge"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "reached").exists()
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files), "runner wrote its artifacts"
    assert not [p for p in files if CANARY in p.read_text(errors="replace")]


def test_ssh_args_check_host_keys_first_and_keep_the_configured_ones(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.run_env import ssh_args

    monkeypatch.delenv("ANSIBLE_SSH_ARGS", raising=False)
    args = ssh_args()
    assert args.startswith("-o StrictHostKeyChecking=yes -o 'GlobalKnownHostsFile=")
    assert str(state_dir / "known_hosts") in args and "ControlPersist=60s" in args
    monkeypatch.setenv("ANSIBLE_SSH_ARGS", "-o StrictHostKeyChecking=no -o Compression=yes")
    args = ssh_args()
    assert args.index("StrictHostKeyChecking=yes") < args.index("StrictHostKeyChecking=no")
    assert args.endswith("-o Compression=yes")


def test_a_secret_file_left_by_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    import os

    from toolkit.run_env import remove_stale_secret_files

    stale, live = tmp_path / "run-1-a" / "secret-env.json", tmp_path / "run-2-b" / "secret-env.json"
    for path in (stale, live):
        path.parent.mkdir()
        path.write_text("{}")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_secret_files(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_cancel_interrupts_ansible_playbook_before_anything_is_killed(
        tmp_path: Path, state_dir: Path) -> None:
    request = sleep_request(tmp_path, 122)
    cancel = threading.Event()
    threading.Timer(3.0, cancel.set).start()
    result = run_playbook(request, ident="t-int", cancel=cancel)
    assert result.status == "cancelled" and result.exit_code() is ExitCode.CANCELLED
    # SIGINT reached ansible-playbook, which stopped its own way (a SIGKILL leaves no line).
    assert "User interrupted execution" in (Path(result.artifact_dir) / "stdout").read_text()
    time.sleep(1)
    assert [p for p in Path("/proc").glob("[0-9]*/cmdline") if b"sleep\x00122" in _read(p)] == []


def test_published_facts_are_kept_from_the_task_that_publishes_them(
        tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate's seam: the role's set_fact of validate_measurements reaches the run's
    summary for every host, secrets scrubbed (test_facts_cli covers the action filter)."""
    from toolkit.validate_run import MEASUREMENTS_FACT, PUBLISHED_BY

    monkeypatch.setenv("HF_TOKEN", CANARY)
    tasks = f"""
    - name: Publish | Assemble the measurements
      ansible.builtin.set_fact:
        {MEASUREMENTS_FACT}:
          host: "{{{{ inventory_hostname }}}}"
          health: [200]
          chat: "token {{{{ lookup('ansible.builtin.env', 'HF_TOKEN') }}}}"
"""
    request = RunRequest(playbook=write_playbook(tmp_path, tasks),
                         inventories=[write_local_inventory(tmp_path)],
                         published_facts={MEASUREMENTS_FACT: PUBLISHED_BY})
    result = run_playbook(request, ident="t-facts")
    assert result.exit_code() is ExitCode.OK
    assert set(result.summary.facts) == {"h1", "h2"}
    measured = result.summary.facts["h1"][MEASUREMENTS_FACT]
    assert measured["host"] == "h1" and measured["health"] == [200]
    assert CANARY not in measured["chat"] and measured["chat"].startswith("token ")
