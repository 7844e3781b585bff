#!/bin/sh
# The GPU contract suite (tests/gpu/contract.py), for a machine with an NVIDIA GPU, its own
# driver and no internet. Prepare the bundle where the network (or gpuforge's caches) is:
#   scripts/gpu-contract.sh --prepare --bundle DIR [--source-archive FILE] --out DIR
# carry the checkout and DIR to the GPU machine, then run there (under 8 minutes on 16 cores):
#   scripts/gpu-contract.sh --bundle DIR --out OUT        # OUT/contract.json, llama-server.log
#   python3 -m pytest -m gpu tests/gpu                    # the same, as pytest (GPU only)
# Anywhere, the GPU-free part (bundle checksums; facts, gate and judgements on a recorded tree):
#   scripts/gpu-contract.sh --self-check [--bundle DIR] --out OUT
# Exit 0 when the contract holds, 2 when a part of it failed (contract.json says which).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
[ -x "$here/.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && py=$here/.venv/bin/python
# Wheels the bundle carries (PyYAML, ansible-core for gpu_facts' module_utils) are put on the
# path of this run only (PYTHONPATH); nothing is installed.
bundle=$(printf '%s\n' "$@" | sed -n '/^--bundle$/{n;p;}')
for whl in "${bundle:-/nonexistent}"/wheels/*.whl; do
  [ -f "$whl" ] && PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$whl"
done
export PYTHONPATH="${PYTHONPATH:-}"
exec "$py" "$here/tests/gpu/contract.py" "$@"
