"""The profile registry (`playbooks/profiles.yml`): what each profile runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolkit.errors import InvalidInput
from toolkit.paths import content_root


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    playbook: Path
    roles: tuple[str, ...]
    validate: dict[str, Any]


def registry_path() -> Path:
    return content_root() / "playbooks" / "profiles.yml"


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    path = path or registry_path()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, Profile] = {}
    for name, entry in (data.get("profiles") or {}).items():
        out[name] = Profile(
            name=name,
            description=str(entry.get("description", "")),
            playbook=path.parent / str(entry["playbook"]),
            roles=tuple(entry.get("roles") or ()),
            validate=dict(entry.get("validate") or {}),
        )
    return out


def get_profile(name: str) -> Profile:
    profiles = load_profiles()
    if name not in profiles:
        raise InvalidInput(
            f"unknown profile {name!r}",
            hint=f"choose one of: {', '.join(sorted(profiles))} (see `gpuforge profiles`)")
    return profiles[name]
