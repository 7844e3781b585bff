#!/usr/bin/env bash
# Install what gpuforge needs on a fresh Debian/Ubuntu controller, idempotently:
# podman + runc + debootstrap (sandbox hosts), openssh-client, chromium (report tests),
# sslscan (the gateway's TLS test), prometheus (promtool: the alert rule tests), mtail (the gateway metrics program test), the shellcheck that ansible-test sanity runs, and a Python virtual environment in .venv
# with gpuforge and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in podman runc debootstrap openssh-client uidmap sqlite3 chromium rsync curl ca-certificates shellcheck sslscan prometheus mtail; do
  dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Error: these system packages are missing: ${need_apt[*]}" >&2
    echo "Hint: run this script as root, or: sudo apt-get install ${need_apt[*]}" >&2
    exit 5
  fi
  echo "setup: installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# ansible-navigator runs execution environments under podman only where the POSIX
# message queue directory exists (it checks for /dev/mqueue/); container VMs may lack it.
if [ ! -d /dev/mqueue ] && [ "$(id -u)" -eq 0 ]; then
  mkdir -p /dev/mqueue
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$py" -m venv .venv
fi
stamp=.venv/.gpuforge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing gpuforge and its test tools into .venv" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
