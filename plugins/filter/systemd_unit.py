# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Filter gpuforge.infra.unit_verify_command: the `validate:` command that checks a unit file
with `systemd-analyze verify` before it replaces the installed one.

systemd-analyze judges a unit by its file name (a template unit must be named like one), so
the candidate (the template module's %s) is copied under the unit's real name into a private
directory, verified there and the directory removed, whatever the verdict::

    validate: "{{ 'llama-server@validate.service' | gpuforge.infra.unit_verify_command }}"
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]*\.(service|socket|timer|path|mount)$")


def unit_verify_command(unit: str) -> str:
    if not isinstance(unit, str) or not _UNIT.match(unit):
        raise AnsibleFilterError(
            f"unit_verify_command expects a unit file name such as app.service, got {unit!r}")
    return (f"/bin/sh -c 'd=$(mktemp -d) && cp %s \"$d/{unit}\" && "
            f"systemd-analyze verify --man=no \"$d/{unit}\"; rc=$?; rm -rf \"$d\"; exit $rc'")


class FilterModule:
    def filters(self):
        return {"unit_verify_command": unit_verify_command}
