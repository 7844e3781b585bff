"""The summariser turns runner events into counts, failures, timings and reboot flags."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from toolkit.summary import REDACTED, EventSummariser, failure_message, scrub, scrub_data


def ev(kind: str, host: str = "h1", task: str = "T", **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task": task, **data}}


def test_counts_failures_and_timings() -> None:
    s = EventSummariser()
    s.add(ev("runner_on_start", task="Install packages"))
    assert s.hosts["h1"].current_task == "Install packages"
    s.add(ev("runner_on_ok", res={"changed": True, "diff": {"before_header": "a",
                                                           "after_header": "b"}},
             duration=1.5, task_action="ansible.builtin.apt"))
    s.add(ev("runner_on_ok", res={"changed": False}, duration=0.25))
    s.add(ev("runner_on_skipped", res={}))
    s.add(ev("runner_on_failed", task="Start", res={"msg": "unit not found"}))
    s.add(ev("runner_on_failed", task="Probe", res={"msg": "ignored"}, ignore_errors=True))
    s.add(ev("runner_on_unreachable", host="h2", task="Gather",
             res={"msg": "Failed to connect to the host via ssh"}))
    summary = s.summary()
    c = summary.hosts["h1"]
    assert (c.ok, c.changed, c.failed, c.skipped, c.ignored) == (2, 1, 1, 1, 1)
    assert summary.hosts["h2"].unreachable == 1
    assert [(f.host, f.task, f.message, f.kind) for f in summary.failures] == [
        ("h1", "Start", "unit not found", "failed"),
        ("h2", "Gather", "Failed to connect to the host via ssh", "unreachable")]
    assert summary.timings[0].duration_s == 1.5
    assert summary.timings[0].status == "changed"
    assert summary.changes[0].diff == "a -> b"
    assert summary.totals().failed == 1


def test_recap_is_authoritative() -> None:
    s = EventSummariser()
    s.add(ev("runner_on_ok", res={"changed": True}))
    s.add({"event": "playbook_on_stats", "event_data": {
        "ok": {"h1": 5}, "changed": {"h1": 2}, "failures": {}, "dark": {"h2": 1},
        "skipped": {"h1": 1}, "processed": {"h1": 1, "h2": 1}}})
    hosts = s.summary().hosts
    assert (hosts["h1"].ok, hosts["h1"].changed, hosts["h1"].skipped) == (5, 2, 1)
    assert hosts["h2"].unreachable == 1


def test_reboot_required_fact_marks_the_host() -> None:
    s = EventSummariser()
    s.add(ev("runner_on_ok", host="gpu1",
             res={"ansible_facts": {"nvidia_driver_reboot_required": True}}))
    s.add(ev("runner_on_ok", host="gpu2",
             res={"ansible_facts": {"nvidia_driver_reboot_required": False}}))
    assert s.summary().reboot_required == ["gpu1"]


def test_reboot_flag_cleared_after_the_role_rebooted_the_host() -> None:
    # nvidia_driver sets the flag, reboots (nvidia_driver_reboot_ok) and clears it; another
    # role's flag on another host stays.
    s = EventSummariser()
    for host, key, value in [("gpu1", "nvidia_driver_reboot_required", True),
                             ("gpu2", "nvidia_driver_reboot_required", True),
                             ("gpu2", "amd_rocm_reboot_required", True),
                             ("gpu1", "nvidia_driver_reboot_required", False),
                             ("gpu2", "nvidia_driver_reboot_required", False)]:
        s.add(ev("runner_on_ok", host=host, res={"ansible_facts": {key: value}}))
    assert s.summary().reboot_required == ["gpu2"]
    assert s.summary().to_dict()["reboot_required"] == ["gpu2"]


def test_secrets_are_scrubbed_from_messages_and_task_names() -> None:
    s = EventSummariser(secrets=["hf_SECRETTOKEN123"])
    s.add(ev("runner_on_failed", task="use hf_SECRETTOKEN123",
             res={"msg": "401 for token hf_SECRETTOKEN123"}))
    failure = s.summary().failures[0]
    assert "hf_SECRETTOKEN123" not in failure.message + failure.task
    assert REDACTED in failure.message


def test_censored_results_stay_censored() -> None:
    assert failure_message({"censored": "the output has been hidden"}) == \
        "the output has been hidden"


def test_failure_message_prefers_last_stderr_line() -> None:
    assert failure_message({"module_stderr": "trace\n\nE: Unable to locate package x\n"}) == \
        "E: Unable to locate package x"
    assert failure_message({"results": [{"failed": False}, {"failed": True, "msg": "item 2"}]}) \
        == "item 2"


def test_scrub_data_redacts_secret_keys_and_values() -> None:
    data = {"gateway_api_key": "abc", "note": "k=supersecret", "list": ["supersecret"]}
    out = scrub_data(data, ["supersecret"])
    assert out == {"gateway_api_key": REDACTED, "note": f"k={REDACTED}", "list": [REDACTED]}
    assert scrub("abc", ["ab"]) == "abc"  # too short to be a secret: left alone


def test_command_failures_show_stderr_not_the_generic_message() -> None:
    res = {"msg": "non-zero return code", "rc": 100,
           "stderr": "E: Failed to fetch http://mirror.example/x\nE: Some index files failed\n"}
    assert failure_message(res) == "E: Some index files failed"


KEY = 'gf-Key/with+odd=chars"and\\0123456789'


def _b64_in_context(shift: int, urlsafe: bool) -> str:
    import base64

    raw = b"x" * shift + f"Authorization: Bearer {KEY}\n".encode()
    encoded = base64.b64encode(raw).decode()
    return encoded.replace("+", "-").replace("/", "_") if urlsafe else encoded


@pytest.mark.parametrize("form", [
    KEY,
    json.dumps(KEY)[1:-1],  # JSON-escaped, as in an event or a JSON report
    urllib.parse.quote(KEY, safe=""),
    urllib.parse.quote_plus(KEY),
    urllib.parse.quote(KEY),
])
def test_scrub_knows_each_plain_form(form: str) -> None:
    text = f"before {form} after"
    assert scrub(text, [KEY]) == f"before {REDACTED} after"


@pytest.mark.parametrize("shift", [0, 1, 2])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_scrub_finds_a_secret_base64_encoded_at_any_alignment(shift: int, urlsafe: bool) -> None:
    import base64

    blob = _b64_in_context(shift, urlsafe)
    cleaned = scrub(f"data: {blob}", [KEY])
    assert REDACTED in cleaned
    # What is left of the encoding cannot give back the key (at most 2 bytes each side).
    left = cleaned.split(REDACTED)
    decoded_pieces = [base64.b64decode(p + "=" * (-len(p) % 4), altchars=b"-_" if urlsafe
                                       else None, validate=False)
                      for p in (left[0].removeprefix("data: "),) if p]
    assert all(KEY[4:-4].encode() not in piece for piece in decoded_pieces)


def test_each_key_of_a_key_list_is_scrubbed_alone() -> None:
    from toolkit.run_env import secret_values

    keys = "first-key-0123456789,second-key-0123456789"
    values = secret_values({"GPUFORGE_API_KEYS": keys})
    assert scrub("got second-key-0123456789 only", values) == f"got {REDACTED} only"
    assert "first-key" not in scrub(f"all: {keys}", values)


def test_scrub_data_can_leave_secret_named_keys_alone() -> None:
    data = {"gateway_api_key_file": "/etc/k", "msg": "key supersecret", "n": 3}
    assert scrub_data(data, ["supersecret"], keys=False) == {
        "gateway_api_key_file": "/etc/k", "msg": f"key {REDACTED}", "n": 3}


def test_unknown_or_changed_host_key_names_hosts_trust() -> None:
    s = EventSummariser()
    s.add(ev("runner_on_unreachable", res={
        "msg": "Failed to connect to the host via ssh: Host key verification failed.",
        "unreachable": True}))
    s.add(ev("runner_on_unreachable", host="h2", res={
        "msg": "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.9 port 22: "
               "Connection refused", "unreachable": True}))
    first, second = s.summary().failures
    assert "gpuforge hosts trust" in first.message and first.kind == "unreachable"
    assert "hosts trust" not in second.message
