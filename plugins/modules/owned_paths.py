#!/usr/bin/python
# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Ansible module gpuforge.infra.owned_paths: many directories and files, one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owned_paths
short_description: Create directories and set owner, group and mode of many paths in one task
version_added: "0.1.0"
author:
  - gpuforge maintainers (@gpuforge)
description:
  - Creates each directory of O(directories) that is missing (in the order given, so a
    parent listed first is created first) and sets the owner, group and mode of every
    directory of O(directories) and every existing file of O(files).
  - One task instead of a loop of M(ansible.builtin.file) calls, so a no-op run pays one
    round trip to the host however many paths there are.
options:
  directories:
    description: Directories that must exist with O(owner), O(group) and O(directory_mode).
    type: list
    elements: path
    default: []
  files:
    description: Files whose O(owner), O(group) and O(file_mode) are set; missing ones are left.
    type: list
    elements: path
    default: []
  owner:
    description: Owner name of every path.
    type: str
    required: true
  group:
    description: Group name of every path.
    type: str
    required: true
  directory_mode:
    description: Mode of the directories, octal as a string.
    type: str
    default: "0755"
  file_mode:
    description: Mode of the files, octal as a string.
    type: str
    default: "0644"
attributes:
  check_mode:
    description: Reports what it would create or change, and changes nothing.
    support: full
  diff_mode:
    description: No diff; RV(changed_paths) lists what changed.
    support: none
"""

EXAMPLES = r"""
- name: Create the store and its revision directories
  gpuforge.infra.owned_paths:
    directories: [/srv/gpuforge/models, /srv/gpuforge/models/m, /srv/gpuforge/models/m/r1]
    files: [/srv/gpuforge/models/m/r1/model.gguf]
    owner: root
    group: gpuforge-models
    directory_mode: "0750"
    file_mode: "0640"
"""

RETURN = r"""
changed_paths:
  description: The paths created or whose owner, group or mode changed.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "path", "default": []},
            "files": {"type": "list", "elements": "path", "default": []},
            "owner": {"type": "str", "required": True},
            "group": {"type": "str", "required": True},
            "directory_mode": {"type": "str", "default": "0755"},
            "file_mode": {"type": "str", "default": "0644"},
        },
        supports_check_mode=True,
    )
    p = module.params
    changed_paths = []

    def settle(path: str, mode: str) -> None:
        changed = module.set_owner_if_different(path, p["owner"], False)
        changed = module.set_group_if_different(path, p["group"], changed)
        changed = module.set_mode_if_different(path, mode, changed)
        if changed and path not in changed_paths:
            changed_paths.append(path)

    for path in p["directories"]:
        if not os.path.isdir(path):
            if os.path.lexists(path):
                module.fail_json(msg=f"owned_paths: {path} exists and is not a directory")
            changed_paths.append(path)
            if module.check_mode:
                continue  # would be created (its parents may not exist yet either)
            try:
                os.makedirs(path, 0o700)  # parents as ansible.builtin.file makes them
            except OSError as exc:
                module.fail_json(msg=f"owned_paths: cannot create {path}: {exc.strerror}")
        settle(path, p["directory_mode"])
    for path in p["files"]:
        if os.path.isfile(path):
            settle(path, p["file_mode"])
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths)


if __name__ == "__main__":
    main()
