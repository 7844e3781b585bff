# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Lookup gpuforge.infra.api_keys: the API keys the controller holds, for the roles.

The roles' one reader of key sources (the toolkit's is toolkit/keys.py, same format):
environment variables named by ``env`` (each may hold a comma-separated list), then the key
file named by ``file`` (one key per line, blanks trimmed, empty lines skipped). The caller
passes the *names* of its sources (``gpuforge_api_key_env``, ``gateway_api_key_file``),
never the keys, so no key is ever an extra var on a command line or in runner's artifacts.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: api_keys
author:
  - gpuforge maintainers (@gpuforge)
short_description: API keys from controller environment variables and a key file
description:
  - Returns the keys, in order, from each environment variable in O(env)
    (comma-separated lists allowed), then each line of O(file).
options:
  env:
    description: Names of controller environment variables that may hold keys.
    type: list
    elements: str
    default: []
  file:
    description: A key file on the controller (one key per line); empty for none.
    type: str
    default: ""
  first:
    description: Return only the first key (an empty string when there is none).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Every key the gateway accepts
  ansible.builtin.debug:
    msg: >-
      {{ lookup('gpuforge.infra.api_keys', env=gpuforge_api_key_env,
                file=gateway_api_key_file) | length }}
"""

RETURN = r"""
_raw:
  description: The keys (a list), or with O(first) the first key.
  type: list
  elements: str
"""

import os  # noqa: E402 - ansible's documentation blocks come first

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402


def parse_keys(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def collect(env_names: list[str], env: dict[str, str], file_text: str) -> list[str]:
    keys = [part.strip() for name in env_names
            for part in env.get(name, "").split(",") if part.strip()]
    return keys + parse_keys(file_text)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        path = self.get_option("file") or ""
        text = ""
        if path:
            try:
                with open(os.path.expanduser(path), encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                raise AnsibleLookupError(f"api_keys: cannot read key file {path}: "
                                         f"{exc.strerror}") from exc
        keys = collect(list(self.get_option("env") or []), dict(os.environ), text)
        if self.get_option("first"):
            return [keys[0] if keys else ""]
        return [keys]
