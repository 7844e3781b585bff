#!/usr/bin/env bash
# Run one role's molecule scenario with the settings gpuforge uses for podman:
#   tests/molecule/run.sh ROLE [SCENARIO] [molecule subcommand, default: test]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
role=$1; scenario=${2:-default}; action=${3:-test}
py="${GPUFORGE_PYTHON:-$here/.venv/bin/python}"
# Images and CONTAINERS_CONF come from the toolkit, so molecule and `sandbox up` agree.
eval "$("$py" -m toolkit.sandbox.molecule_env)"
export MOLECULE_ROLE="$role"   # names the hosts of the shared platforms
cd "$here/roles/$role"
exec "$(dirname "$py")/molecule" "$action" -s "$scenario"
