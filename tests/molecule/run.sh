#!/usr/bin/env bash
# Run one role's molecule scenario with the settings gpuforge uses for podman:
#   tests/molecule/run.sh ROLE [SCENARIO] [molecule subcommand, default: test]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
role=$1; scenario=${2:-default}; action=${3:-test}
py="${GPUFORGE_PYTHON:-$here/.venv/bin/python}"
# The strategy the scenario's plays run under: mitogen (default here: a task on a podman host
# costs one message instead of several `podman exec` calls; the gateway scenario's converge
# took 20 s instead of 98 s) or linear, Ansible's own and `gpuforge apply`'s default, which
# the sandbox integration tests run under.
strategy=${GPUFORGE_MOLECULE_STRATEGY:-mitogen}
case $strategy in
  linear|mitogen) ;;
  *) echo "Error: GPUFORGE_MOLECULE_STRATEGY is '$strategy'; expected linear or mitogen" >&2
     exit 3 ;;
esac
# Images and CONTAINERS_CONF come from the toolkit, so molecule and `sandbox up` agree.
eval "$("$py" -m toolkit.sandbox.molecule_env)"
if [ "$strategy" = mitogen ]; then
  # mitogen_linear without its CPU pinning, which confines podman hosts to one core
  # (tests/molecule/strategy/gpuforge_mitogen_linear.py says why).
  export ANSIBLE_STRATEGY=gpuforge_mitogen_linear
  export ANSIBLE_STRATEGY_PLUGINS="$here/tests/molecule/strategy"
else
  export ANSIBLE_STRATEGY=linear
fi
export MOLECULE_ROLE="$role"   # names the hosts of the shared platforms
cd "$here/roles/$role"
exec "$(dirname "$py")/molecule" "$action" -s "$scenario"
