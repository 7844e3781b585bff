"""Stand-in for ansible-test's pip bootstrap script.

ansible-test downloads `get-pip-<version>.py` from the Ansible project's CI file server to
put pip into each sanity virtualenv. That server is unreachable from an air-gapped or
registry-only site, so this script does the same job from what Python ships: ensurepip
installs the bundled pip, which then installs the arguments ansible-test passes (the pinned
pip version) from the configured package index, trusting the system's CA bundle (a
TLS-inspecting proxy's CA included), as the controller's own pip does."""

import ensurepip
import ssl
import subprocess
import sys

ensurepip.bootstrap(upgrade=False, default_pip=True)
# --no-setuptools and --no-wheel are get-pip's own options; pip has no such options.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cafile = ssl.get_default_verify_paths().cafile
cert = ["--cert", cafile] if cafile else []
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *cert, *args]))
