# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Filter gpuforge.infra.run_metrics_textfile: gpuforge's own run records as a Prometheus
textfile (the node exporter's textfile collector format).

A record is what the toolkit hands a host after an apply or a validate::

    {"kind": "apply", "profile": "cpu-llm", "success": true, "timestamp": 1733150000.0,
     "duration_s": 212.4, "checks": {"tokens_per_s": {"passed": true, "value": 93.1}}}

The input is a mapping ``"<kind>/<profile>" -> record`` (the host keeps every profile's last
run), the output the file's text, sorted, so an unchanged state renders the same bytes.
"""

from __future__ import annotations

import math
import re

from ansible.errors import AnsibleFilterError

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_HELP = {
    "gpuforge_run_success": (
        "gauge", "1 if the last run of this kind and profile succeeded on this host"),
    "gpuforge_run_timestamp_seconds": (
        "gauge", "When the last run of this kind and profile ended (unix time)"),
    "gpuforge_run_duration_seconds": (
        "gauge", "How long the last run of this kind and profile took"),
    "gpuforge_validate_check_passed": ("gauge", "1 if the check passed in the last validate"),
    "gpuforge_validate_check_value": ("gauge", "What the last validate measured for the check"),
}


def _label(value):
    """A label value: safe names only, so nothing needs escaping in the exposition format."""
    text = str(value)
    if not _NAME.match(text):
        raise AnsibleFilterError(f"run_metrics_textfile: unsafe label value {text!r}")
    return text


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnsibleFilterError(
            f"run_metrics_textfile: {what} must be a finite number, got {value!r}")
    return repr(float(value))


def run_metrics_textfile(records):
    """The textfile for every record in ``records`` (see the module docstring)."""
    if not isinstance(records, dict):
        raise AnsibleFilterError("run_metrics_textfile: expects a mapping of run records")
    samples = {name: [] for name in _HELP}
    for key in sorted(records):
        record = records[key]
        labels = f'kind="{_label(record["kind"])}",profile="{_label(record["profile"])}"'
        samples["gpuforge_run_success"].append(f"{{{labels}}} {1 if record['success'] else 0}")
        samples["gpuforge_run_timestamp_seconds"].append(
            f"{{{labels}}} {_number(record['timestamp'], 'timestamp')}")
        samples["gpuforge_run_duration_seconds"].append(
            f"{{{labels}}} {_number(record['duration_s'], 'duration_s')}")
        for check in sorted(record.get("checks") or {}):
            result = record["checks"][check]
            check_labels = f'{labels},check="{_label(check)}"'
            samples["gpuforge_validate_check_passed"].append(
                f"{{{check_labels}}} {1 if result['passed'] else 0}")
            if result.get("value") is not None:
                samples["gpuforge_validate_check_value"].append(
                    f"{{{check_labels}}} {_number(result['value'], check)}")
    lines = []
    for name, (kind, text) in _HELP.items():
        if samples[name]:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{sample}" for sample in samples[name]]
    return "\n".join(lines) + "\n" if lines else ""


class FilterModule:
    """gpuforge run metrics filter."""

    def filters(self):
        return {"run_metrics_textfile": run_metrics_textfile}
