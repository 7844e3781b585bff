"""mitogen's linear strategy for the molecule scenarios, without mitogen's CPU pinning.

mitogen pins its connection multiplexer to the first CPU and, on a machine with fewer than
four, every process a connection starts to the others. With podman hosts that process is
the `podman exec` running the host's Python, so everything a scenario ran on its hosts
inherited the mask: on a 2-core machine llama.cpp's `make -j2` (and every apt install of
every scenario) shared CPU 1 while CPU 0 sat idle (cc1plus at ~9 % each, the machine 42 %
idle, `taskset -p` of the compile: mask 2). Hosts reached over SSH are not affected
(`gpuforge apply --strategy mitogen` keeps mitogen's own policy); this harness is.
"""

from __future__ import annotations

import ansible_mitogen.affinity
import ansible_mitogen.loaders
import ansible_mitogen.strategy

# The base Policy places nothing: every process keeps the CPUs it was started with.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    """mitogen_linear, with the placement policy above."""
