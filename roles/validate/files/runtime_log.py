# Run by ansible.builtin.script with executable: python3 (tasks/gpu.yml), not directly.
"""Print, as JSON, the lines of each unit's current run in the journal that say where the
runtime computes: llama.cpp's device and offload lines (llama-server, Ollama's runner), vLLM's
platform, Ollama's inference compute.

Run on GPU hosts by the validate role (stdlib only, read-only). Arguments: systemd unit names.
Output: {unit: {"invocation": id or "", "lines": [...], "error": ""}}. Only the current run
(the unit's InvocationID) is read, so lines of an earlier start on another backend never
count; the last MAX_LINES matching lines are kept.
"""

import collections
import json
import re
import subprocess
import sys

MAX_LINES = 200
KEEP = re.compile(
    r"offloaded \d+/\d+ layers to GPU|using device |ggml_cuda_init|^\s*Device \d+: "
    r"|detected platform |No platform detected|inference compute|no compatible GPUs")


def keep(lines):
    """The lines that say where the runtime computes, the last MAX_LINES of them."""
    return list(collections.deque((line.rstrip("\n") for line in lines if KEEP.search(line)),
                                  maxlen=MAX_LINES))


def read_unit(unit):
    show = subprocess.run(["systemctl", "show", "--property=InvocationID", "--value", unit],
                          capture_output=True, text=True, check=False)
    invocation = show.stdout.strip()
    if show.returncode != 0 or not invocation:
        return {"invocation": "", "lines": [],
                "error": (show.stderr.strip() or "the unit is not running")[-300:]}
    with subprocess.Popen(
            ["journalctl", "--no-pager", "--output=cat", "_SYSTEMD_INVOCATION_ID=" + invocation],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            errors="replace") as proc:
        lines = keep(proc.stdout)
        err = proc.stderr.read()
    error = "" if proc.returncode == 0 else (err.strip() or "journalctl failed")[-300:]
    if not lines and not error and err.strip():
        error = err.strip()[-300:]  # "No journal files were opened due to insufficient permissions"
    return {"invocation": invocation, "lines": lines, "error": error}


def main(units):
    print(json.dumps({unit: read_unit(unit) for unit in dict.fromkeys(units)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
