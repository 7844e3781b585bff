"""Start a program with secret environment variables read from a 0600 file.

Run by ansible-runner as `python _secret_exec.py FILE -- ansible-playbook ...`: the file
(JSON object of name -> value, written by toolkit.runner) is read and unlinked at once, the
variables are added to this process's environment and the program replaces this process.
So the secrets are never in a command line (ps), in runner's `command` artifact or in an
env file: only in /proc/<pid>/environ, which only the same user and root can read.

Standalone on purpose (no toolkit import): it must start fast and from any cwd.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _secret_exec.py SECRETS_FILE -- PROGRAM [ARGS...]\n")
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in values.items()})
    os.execvpe(argv[3], argv[3:], env)
    return 127  # not reached: execvpe raises on failure


if __name__ == "__main__":
    sys.exit(main(sys.argv))
