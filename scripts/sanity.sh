#!/usr/bin/env bash
# ansible-test sanity on the collection exactly as it ships: build the tarball, unpack it
# at ansible_collections/gpuforge/infra in a temporary directory outside this checkout
# (inside it, ansible-test would list files through git and find none), run every sanity
# test there. ansible-test's HOME is .cache/sanity/home (its venvs and caches, kept between
# runs), so the user's ~/.ansible is neither read nor written. Needs .venv (setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
bin=$here/.venv/bin
home=$here/.cache/sanity/home
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/dist" "$home/.ansible/test/cache"
"$bin/ansible-galaxy" collection build -f --output-path "$work/dist" . >/dev/null
tree=$work/ansible_collections/gpuforge/infra
mkdir -p "$tree"
tar -xzf "$work"/dist/gpuforge-infra-*.tar.gz -C "$tree"
mkdir -p "$tree/tests/sanity"
cp tests/sanity/ignore-*.txt "$tree/tests/sanity/" 2>/dev/null || true
# ansible-test fetches its pip bootstrap script from a server only Ansible's CI reaches.
pip_version=$("$bin/python" -c 'from ansible_test._internal.python_requirements import PIP_VERSION; print(PIP_VERSION)' 2>/dev/null || echo 24.2)
cp scripts/sanity/get_pip.py "$home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
cd "$tree"
log=$work/sanity.log
status=0
HOME=$home PATH=$bin:$PATH "$bin/ansible-test" sanity --local --python 3.11 "$@" 2>&1 \
  | tee "$log" || status=$?
ran=$(grep -c '^Running sanity test' "$log" || true)
# ansible-test only warns when a test's program is missing; under CI that is a failure.
if [ "${CI:-}" = true ] && grep -q 'Required program .* not found' "$log"; then
  echo "Error: a sanity test's program is missing (see the warning above): run scripts/setup.sh" >&2
  status=5
fi
if [ "$status" -eq 0 ]; then
  echo "ansible-test sanity: $ran tests run, 0 failed" >&2
else
  echo "ansible-test sanity: $ran tests run, failures above" >&2
fi
exit "$status"
