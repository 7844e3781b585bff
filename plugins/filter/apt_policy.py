# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Filters gpuforge.infra.apt_policy and gpuforge.infra.apt_pending.

They read ``apt-cache policy PKG...``: one block per package, ``name:`` at the start of a
line, then ``  Installed: VERSION`` (``(none)`` when absent) and ``  Candidate: VERSION``
(the version apt would install, after pins; holds do not change it). The version table
below them is not needed and is ignored. Localised output is not read: run it with
``LC_ALL=C``.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_NAME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.:-]*):\s*$")
_FIELD = re.compile(r"^\s+(?P<key>Installed|Candidate):\s*(?P<value>\S+)\s*$")


def apt_policy(text):
    """``apt-cache policy`` output as {package: {"installed": str, "candidate": str}};
    a missing version is the empty string (apt prints ``(none)``)."""
    if isinstance(text, (list, tuple)):
        lines = [str(line) for line in text]
    elif isinstance(text, str):
        lines = text.splitlines()
    else:
        raise AnsibleFilterError(
            "apt_policy expects the text of `apt-cache policy` (a string or a list of lines), "
            "got %s" % type(text).__name__)
    packages = {}
    current = None
    for line in lines:
        name = _NAME.match(line)
        if name:
            current = packages.setdefault(name.group("name"), {"installed": "", "candidate": ""})
            continue
        field = _FIELD.match(line)
        if field and current is not None:
            value = field.group("value")
            current[field.group("key").lower()] = "" if value == "(none)" else value
    return packages


def apt_pending(text):
    """The installed packages whose candidate differs from the installed version, sorted:
    what an upgrade to the candidates (the pinned version) would change."""
    return sorted(name for name, versions in apt_policy(text).items()
                  if versions["installed"] and versions["candidate"]
                  and versions["installed"] != versions["candidate"])


class FilterModule:
    """gpuforge apt filters."""

    def filters(self):
        return {"apt_policy": apt_policy, "apt_pending": apt_pending}
