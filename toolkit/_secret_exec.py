"""Start ansible-playbook for toolkit.runner: secrets from a 0600 file, and tied to gpuforge.

Run by ansible-runner as `python _secret_exec.py FILE|- -- ansible-playbook ...`:
- FILE (a JSON object of name -> value, written by toolkit.run_env) is read and unlinked at
  once and its variables are added to the environment of the program, which replaces this
  process. So the secrets are never on a command line (ps), in runner's `command` artifact
  or in an env file: only in /proc/<pid>/environ, which only the same user and root read.
- The program gets SIGTERM when gpuforge dies (Linux parent-death signal, kept across
  exec): a gpuforge killed with SIGKILL does not leave an ansible-playbook running on,
  unwatched and unrecorded. ansible-playbook then stops its workers; a task already
  running on a host may finish, no new one starts.

Standalone on purpose (no toolkit import): it must start fast and from any cwd.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before prctl took effect
            sys.exit(130)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _secret_exec.py SECRETS_FILE|- -- PROGRAM [ARGS...]\n")
        return 2
    die_with_parent()
    env = dict(os.environ)
    path = argv[1]
    if path != "-":
        try:
            with open(path, encoding="utf-8") as fh:
                values = json.load(fh)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        env.update({str(k): str(v) for k, v in values.items()})
    os.execvpe(argv[3], argv[3:], env)
    return 127  # not reached: execvpe raises on failure


if __name__ == "__main__":
    sys.exit(main(sys.argv))
