# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Filter gpuforge.infra.runtime_instances: models -> one runtime instance per model.

``['a', 'b'] | gpuforge.infra.runtime_instances(8081)`` gives
``[{'name': 'a', 'model': 'a', 'port': 8081}, {'name': 'b', 'model': 'b', 'port': 8082}]``:
the instances a host serves when its models come from a list (the placement's
``gpuforge_placed_models``, or the role default), each on its own loopback port, in the
list's order.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def runtime_instances(models, first_port=8081):
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
        raise AnsibleFilterError(
            f"runtime_instances expects a list of model names, got {models!r}")
    if isinstance(first_port, bool) or not isinstance(first_port, int):
        raise AnsibleFilterError(f"runtime_instances: first_port must be a port number, "
                                 f"got {first_port!r}")
    unique = list(dict.fromkeys(models))
    return [{"name": m, "model": m, "port": first_port + i} for i, m in enumerate(unique)]


class FilterModule:
    def filters(self):
        return {"runtime_instances": runtime_instances}
