# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Filters gpuforge.infra.dkms_status and gpuforge.infra.dkms_missing_kernels.

They read ``dkms status`` in both layouts the distributions ship:

- dkms 3.x (Debian 12/13, Ubuntu 24.04, RHEL 9 EPEL): ``name/version, kernel, arch: state``
  and ``name/version: added`` before a build;
- dkms 2.x (Ubuntu 22.04 and older): ``name, version, kernel, arch: state`` and
  ``name, version: added``.

A state can carry a note (``installed (original_module exists)``, ``installed (WARNING! Diff
between built and installed module!)``); dkms also prints warnings and errors on the same
stream. Lines of neither layout are ignored, never guessed at.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# "head: state[ (note)]": the head never holds a colon, the state is one word.
_LINE = re.compile(r"^(?P<head>[^:]+):\s*(?P<state>[A-Za-z-]+)\b")


def _parse_line(line):
    """One ``dkms status`` line as a dict, or None for a warning or anything unknown."""
    match = _LINE.match(line.strip())
    if not match:
        return None
    parts = [part.strip() for part in match.group("head").split(",")]
    if "/" in parts[0]:  # dkms 3.x: name/version first
        module, version = parts[0].split("/", 1)
        rest = parts[1:]
    elif len(parts) >= 2:  # dkms 2.x: name, version
        module, version = parts[0], parts[1]
        rest = parts[2:]
    else:
        return None
    if not module or not version or len(rest) not in (0, 2) or " " in module:
        return None
    kernel, arch = rest if rest else ("", "")
    return {"module": module, "version": version, "kernel": kernel, "arch": arch,
            "state": match.group("state").lower()}


def dkms_status(text):
    """Parse ``dkms status`` output (a string or a list of lines) into a list of dicts with
    keys module, version, kernel, arch (empty before a build) and state."""
    if isinstance(text, (list, tuple)):
        lines = [str(line) for line in text]
    elif isinstance(text, str):
        lines = text.splitlines()
    else:
        raise AnsibleFilterError(
            "dkms_status expects the text of `dkms status` (a string or a list of lines), "
            "got %s" % type(text).__name__)
    entries = (_parse_line(line) for line in lines)
    return [entry for entry in entries if entry is not None]


def dkms_missing_kernels(text, kernels, module="^nvidia", version=""):
    """The kernels of ``kernels`` for which no module whose name matches the regular
    expression ``module`` is in state ``installed``, in the order given. With ``version``,
    only a module of that version counts (a driver upgrade must leave the new one built)."""
    try:
        name = re.compile(module)
    except re.error as err:
        raise AnsibleFilterError("dkms_missing_kernels: bad module pattern %r: %s"
                                 % (module, err)) from err
    built = {entry["kernel"] for entry in dkms_status(text)
             if entry["state"] == "installed" and name.search(entry["module"])
             and (not version or entry["version"] == version)}
    return [kernel for kernel in kernels if kernel not in built]


class FilterModule:
    """gpuforge DKMS filters."""

    def filters(self):
        return {"dkms_status": dkms_status, "dkms_missing_kernels": dkms_missing_kernels}
