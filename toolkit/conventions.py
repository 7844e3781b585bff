"""The controller's conventions, handed to every run as Ansible variables.

Roles never read gpuforge's environment: where the state and cache live and where API keys
come from reach them as the variables below, which `run_profile` merges into every run's
extra vars. A plain `ansible-playbook` or an AWX job template passes the same names (see
docs/conventions.md); each role falls back to the documented default when one is absent.

No secret is ever a value here: keys are named by source (environment variable names, key
file paths), since extra vars are written to ansible-runner's artifacts.
"""

from __future__ import annotations

from typing import Any

from toolkit.keys import API_KEY_ENV
from toolkit.paths import cache_dir, seeds_dir, state_dir

# name -> what it holds (docs/conventions.md and the roles' argument specs say the same).
VARIABLES = {
    "gpuforge_state_dir": "Controller directory of gpuforge's state (history, model cache, "
                          "pinned gateway certificates).",
    "gpuforge_cache_dir": "Controller directory of rebuildable caches (llama.cpp builds).",
    "gpuforge_seeds_dir": "Controller directory of the catalogs (models.yml, compat.yml).",
    "gpuforge_api_key_env": "Names of controller environment variables holding API keys "
                            "(comma-separated lists allowed); the names, never the keys.",
}


def role_variables() -> dict[str, Any]:
    """The variables the toolkit passes to every playbook run."""
    return {
        "gpuforge_state_dir": str(state_dir()),
        "gpuforge_cache_dir": str(cache_dir()),
        "gpuforge_seeds_dir": str(seeds_dir()),
        "gpuforge_api_key_env": list(API_KEY_ENV),
    }
