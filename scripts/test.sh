#!/usr/bin/env bash
# The test command: set-up, lint, then every test (unit, molecule scenarios of every
# role, sandbox integration, faults) in three pytest phases. Needs root (rootful podman).
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

results=.cache/test-results
rm -rf "$results"; mkdir -p "$results"
workers=${GPUFORGE_TEST_WORKERS:-2}
# The llama_cpp scenario compiles llama.cpp into the controller cache (the run's longest
# step, about 18 core-minutes): it starts as soon as the sandbox images exist, beside lint,
# sanity, the EE build and phase 1, so nothing waits for it to begin. Its output is printed
# when it ends.
echo "== sandbox images" >&2
"$bin/gpuforge" sandbox image --distro debian12
"$bin/gpuforge" sandbox image --distro debian13
llama=tests/molecule/test_scenarios.py::test_molecule_scenario[llama_cpp-default]
# Its own process group (setsid), so a failing step below stops it with its molecule run.
setsid "$bin/pytest" -p no:cacheprovider -ra -v --junitxml="$results/phase0.xml" "$@" "$llama" \
  > "$results/phase0.log" 2>&1 &
phase0=$!
trap 'kill -- -"$phase0" 2>/dev/null || true' EXIT

echo "== lint" >&2
"$bin/yamllint" -s .
"$bin/ansible-lint" --format=pep8 -q
"$bin/ruff" check .
"$bin/mypy" toolkit
# The collection as it ships, through the Ansible project's own checks (about 2 minutes
# on a fresh machine, seconds once its virtualenvs exist).
bash scripts/sanity.sh
# The AWX execution environment image (tests/integration/test_ee.py), built from local
# parts; cached by content hash, so a run with nothing changed takes seconds.
bash scripts/ee-build.sh >/dev/null

echo "== tests" >&2
# Two xdist workers: much of a provisioning test is waiting (apt, boots, probes).
# Phase 1, unit tests and every other role's molecule scenario, one scenario at a time per
# worker, beside the llama_cpp scenario (phase 0 above).
# Phase 2, sandbox integration and faults, a whole file per worker (a file shares its
# sandbox hosts between its tests), installing llama.cpp from the cache phase 0 filled.
# Everything is in the gate, including the tests that serve a real model with the
# llama.cpp build (marker llama_build; `pytest -m llama_build` runs them alone). Outside it:
# the real nvidia DKMS builds and driver upgrade (`pytest -m dkms_build tests/molecule`,
# about 25 minutes), tests/gpu (a GPU machine) and the CUDA build (`-m cuda_build`).
# Under CI=true a test that would be skipped for want of a tool fails instead
# (tests/ci_strict.py). The last lines count the phases together, with every reason.
status=0
"$bin/pytest" -p no:cacheprovider -ra -v -n "$workers" --dist load \
  --junitxml="$results/phase1.xml" --deselect "$llama" -m "not dkms_build" "$@" tests/unit tests/molecule || status=$?
echo "== phase 0 (llama_cpp scenario)" >&2
wait "$phase0" || status=$?
trap - EXIT
cat "$results/phase0.log"
"$bin/pytest" -p no:cacheprovider -ra -v -n "$workers" --dist loadfile \
  --junitxml="$results/phase2.xml" "$@" tests/integration tests/faults || status=$?
echo "== all phases" >&2
"$bin/python" -m tests.junit_total "$results/phase0.xml" "$results/phase1.xml" "$results/phase2.xml" || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
