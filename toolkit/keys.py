"""API keys on the controller: where they come from and how a key file is read.

The one reader of key files for the toolkit (check, the secret scrubber, `endpoints`). The
roles read the same sources through the lookup plugin gpuforge.infra.api_keys, which follows
the same format: one key per line, surrounding blanks dropped, empty lines ignored.

Sources, in order: the environment variables in API_KEY_ENV (each may hold a comma-separated
list), then a key file (a variable such as gateway_api_key_file names it). Key values never
become Ansible variables passed on the command line: the toolkit hands the roles the *names*
of the environment variables (toolkit.conventions) and ansible-playbook gets their values
through toolkit/_secret_exec.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Controller environment variables that hold gateway API keys (comma-separated lists allowed).
API_KEY_ENV = ("GPUFORGE_API_KEYS", "GPUFORGE_API_KEY")

# Variables naming a file on the controller that holds secrets (one per line).
KEY_FILE_VARS = ("gateway_api_key_file", "gateway_fleet_key_file",
                 "monitoring_agent_metrics_token_file", "prometheus_metrics_token_file")


def key_file_path(value: Any) -> Path | None:
    """The controller path a key-file variable names (None: unset, or a template)."""
    if not isinstance(value, str) or not value or "{{" in value:
        return None
    return Path(value).expanduser()


def parse_keys(text: str) -> list[str]:
    """The keys of a key file's text: one per line, trimmed, blank lines skipped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_key_file(path: Path) -> list[str]:
    """The keys a key file holds ([] when it is not a file)."""
    return parse_keys(path.read_text(encoding="utf-8")) if path.is_file() else []


def env_keys(env: Mapping[str, str]) -> list[str]:
    """The keys the controller's environment holds, in API_KEY_ENV order."""
    return [part.strip() for name in API_KEY_ENV
            for part in env.get(name, "").split(",") if part.strip()]


def env_key_source(env: Mapping[str, str]) -> str | None:
    """The first environment variable that holds a key, as a user reads it."""
    return next((f"env {name}" for name in API_KEY_ENV if env_keys({name: env.get(name, "")})),
                None)
