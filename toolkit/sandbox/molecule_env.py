"""Print `export` lines that give molecule the same podman settings, images, roles and
collection path as `gpuforge` itself: `eval "$(python -m toolkit.sandbox.molecule_env)"`."""

from __future__ import annotations

import shlex
import sys

from toolkit.paths import cache_dir, collections_dir, content_root, state_dir
from toolkit.sandbox.images import DISTROS, ensure_image
from toolkit.sandbox.podman import containers_conf


def main() -> None:
    for distro in DISTROS:
        ensure_image(distro)
    root = content_root()
    exports = {
        "CONTAINERS_CONF": str(containers_conf()),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_dir()),
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(state_dir() / "molecule-facts"),
        # Resolved once here; .config/molecule/config.yml hands them to the roles as the
        # convention variables (toolkit.conventions), as `gpuforge apply` does.
        "GPUFORGE_STATE_DIR": str(state_dir()),
        "GPUFORGE_CACHE_DIR": str(cache_dir()),
        "PATH": f"{sys.prefix}/bin:" + __import__("os").environ.get("PATH", ""),
    }
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
