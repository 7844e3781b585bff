#!/usr/bin/python
# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Ansible module gpuforge.infra.model_digest: sha256 of model files, hashed once per change."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_digest
short_description: Report the sha256 of model files, re-hashing only files that changed
version_added: "0.1.0"
author:
  - gpuforge maintainers (@gpuforge)
description:
  - Returns the sha256 of each file in O(files). A file is hashed once and its digest is
    recorded in O(record) with the file's size, modification time (nanoseconds) and inode;
    later calls trust the record while those three are unchanged, so the cost of a no-op run
    does not grow with the size of the models.
  - A file whose size, mtime or inode changed is hashed again. O(deep=true) hashes every file.
  - The record is a JSON file written atomically (a temporary file in its directory, then a
    rename). Entries for files that no longer exist are dropped.
options:
  files:
    description:
      - Absolute paths of the files to report, in the order wanted back.
    type: list
    elements: path
    required: true
  record:
    description:
      - Path of the JSON record of verified digests (on the host, beside the files).
    type: path
    required: true
  deep:
    description:
      - Hash every file, whatever the record says (C(gpuforge validate --deep)).
    type: bool
    default: false
  write:
    description:
      - Update the record with what was hashed. V(false) reads it only (validate).
    type: bool
    default: true
  verified:
    description:
      - Digests the caller has just verified while writing the files (a download checked
        against its sha256), as a mapping of path to sha256. They are recorded without
        hashing the files again.
    type: dict
    default: {}
attributes:
  check_mode:
    description: Hashes and reports in check mode; the record is not written.
    support: full
  diff_mode:
    description: No diff.
    support: none
notes:
  - An edit that keeps a file's size and restores its mtime in place is seen only by
    O(deep=true); the record guards against replaced, truncated, grown or touched files.
"""

EXAMPLES = r"""
- name: Hash the model files that changed since they were last verified
  gpuforge.infra.model_digest:
    files: [/srv/gpuforge/models/m/r1/model.gguf]
    record: /srv/gpuforge/models/.sha256.json
  register: digests
"""

RETURN = r"""
files:
  description: One entry per file of O(files), in that order.
  returned: always
  type: list
  elements: dict
  contains:
    path: {description: The file., type: str}
    exists: {description: Whether it is a regular file., type: bool}
    checksum: {description: Its sha256 (empty when absent)., type: str}
    hashed:
      description: Whether it was hashed in this call (else trusted from the record).
      type: bool
    size: {description: Its size in bytes., type: int}
hashed_bytes:
  description: Bytes read to hash files in this call (0 on a no-op run).
  returned: always
  type: int
"""

import hashlib
import json
import os
import stat
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

CHUNK = 4 * 1024 * 1024


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def identity(st: os.stat_result) -> dict[str, int]:
    """What must stay the same for a recorded digest to be trusted."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def trusted(entry: Any, st: os.stat_result) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        return False
    return all(entry.get(k) == v for k, v in identity(st).items())


def load_record(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}  # absent or unreadable: every file is hashed and the record rewritten
    files = data.get("files") if isinstance(data, dict) else None
    return dict(files) if isinstance(files, dict) else {}


def save_record(path: str, files: dict[str, Any]) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".sha256-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"schema": 1, "files": files}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def measure(paths: list[str], record: dict[str, Any], deep: bool,
            verified: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """Each file's digest, the record to keep, and the bytes hashed to get there."""
    out: list[dict[str, Any]] = []
    keep = {p: e for p, e in record.items() if os.path.isfile(p)}
    hashed_bytes = 0
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            keep.pop(path, None)
            out.append({"path": path, "exists": False, "checksum": "", "hashed": False, "size": 0})
            continue
        hashed = False
        if path in verified:
            checksum = verified[path].lower()
        elif not deep and trusted(keep.get(path), st):
            checksum = keep[path]["sha256"]
        else:
            checksum = sha256_of(path)
            hashed = True
            hashed_bytes += st.st_size
            after = os.stat(path)
            if identity(after) != identity(st):  # written while hashed: do not record it
                keep.pop(path, None)
                out.append({"path": path, "exists": True, "checksum": checksum,
                            "hashed": True, "size": st.st_size})
                continue
        keep[path] = {"sha256": checksum, **identity(st)}
        out.append({"path": path, "exists": True, "checksum": checksum, "hashed": hashed,
                    "size": st.st_size})
    return out, keep, hashed_bytes


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "path", "required": True},
            "record": {"type": "path", "required": True},
            "deep": {"type": "bool", "default": False},
            "write": {"type": "bool", "default": True},
            "verified": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    bad = [k for k, v in p["verified"].items()
           if not (isinstance(v, str) and len(v) == 64
                   and all(c in "0123456789abcdefABCDEF" for c in v))]
    if bad:
        module.fail_json(msg=f"model_digest: verified needs a 64-hex sha256 per path; bad: {bad}")
    record = load_record(p["record"])
    try:
        files, keep, hashed_bytes = measure(p["files"], record, p["deep"], p["verified"])
    except OSError as exc:
        module.fail_json(msg=f"model_digest: cannot read {exc.filename}: {exc.strerror}")
    changed = keep != record
    if changed and p["write"] and not module.check_mode:
        if os.path.isdir(os.path.dirname(p["record"])):
            save_record(p["record"], keep)
        else:
            changed = False  # no store yet (check mode on a fresh host): nothing to record
    module.exit_json(changed=changed and p["write"], files=files, hashed_bytes=hashed_bytes)


if __name__ == "__main__":
    main()
