#!/usr/bin/env bash
# The test command: set-up, lint, then every test (unit, molecule scenarios of every
# role, sandbox integration, faults) in one pytest run. Needs root (rootful podman).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NO_COLOR=1 PY_COLORS=0 ANSIBLE_NOCOLOR=1
export GPUFORGE_STATE_DIR=${GPUFORGE_STATE_DIR:-$PWD/.cache/state}
bin=.venv/bin
# The collection gpuforge.infra is this checkout, through a link under the state dir:
# lint, molecule and every run resolve gpuforge.infra.* here, never from a copy in
# ~/.ansible/collections (which is neither read nor written).
ANSIBLE_COLLECTIONS_PATH=$("$bin/python" -c 'from toolkit.paths import collections_dir; print(collections_dir())')
export ANSIBLE_COLLECTIONS_PATH

echo "== lint" >&2
"$bin/yamllint" -s .
"$bin/ansible-lint" --format=pep8 -q
"$bin/ruff" check .
"$bin/mypy" toolkit
# The collection as it ships, through the Ansible project's own checks (about 2 minutes
# on a fresh machine, seconds once its virtualenvs exist).
bash scripts/sanity.sh

echo "== sandbox images" >&2
"$bin/gpuforge" sandbox image --distro debian12
"$bin/gpuforge" sandbox image --distro debian13
# The AWX execution environment image (tests/integration/test_ee.py), built from local
# parts; cached by content hash, so a run with nothing changed takes seconds.
bash scripts/ee-build.sh >/dev/null

echo "== tests" >&2
# Two xdist workers: much of a provisioning test is waiting (apt, boots, probes).
# Phase 1, unit tests and every role's molecule scenario, one scenario at a time per
# worker; the llama_cpp scenario compiles llama.cpp into the controller cache.
# Phase 2, sandbox integration and faults, a whole file per worker (a file shares its
# sandbox hosts between its tests), installing llama.cpp from that cache.
# Everything is in the gate, including the tests that serve a real model with the
# llama.cpp build (marker llama_build; `pytest -m llama_build` runs them alone).
workers=${GPUFORGE_TEST_WORKERS:-2}
# Under CI=true a test that would be skipped for want of a tool fails instead
# (tests/ci_strict.py). The last lines count both phases together, with every reason.
results=.cache/test-results
rm -rf "$results"; mkdir -p "$results"
status=0
"$bin/pytest" -p no:cacheprovider -ra -v -n "$workers" --dist load \
  --junitxml="$results/phase1.xml" "$@" tests/unit tests/molecule || status=$?
"$bin/pytest" -p no:cacheprovider -ra -v -n "$workers" --dist loadfile \
  --junitxml="$results/phase2.xml" "$@" tests/integration tests/faults || status=$?
echo "== both phases" >&2
"$bin/python" -m tests.junit_total "$results/phase1.xml" "$results/phase2.xml" || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
