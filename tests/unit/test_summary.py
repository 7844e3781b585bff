"""The summariser turns runner events into counts, failures, timings and reboot flags."""

from __future__ import annotations

from typing import Any

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
