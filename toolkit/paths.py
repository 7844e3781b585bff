"""Where gpuforge keeps its content (roles, playbooks) and its state (history, sandboxes)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def content_root() -> Path:
    """The collection root: roles/, playbooks/, plugins/, seeds/, ansible.cfg, galaxy.yml.

    The one definition of where content lives: GPUFORGE_CONTENT if set; else the copy an
    installed wheel carries in toolkit/_content/ (setup.py puts it there); else the checkout
    this package sits in (a clone, or an editable install)."""
    override = os.environ.get("GPUFORGE_CONTENT")
    if override:
        return Path(override).resolve()
    packaged = PACKAGE_DIR / "_content"
    if (packaged / "galaxy.yml").is_file():
        return packaged
    return PACKAGE_DIR.parent


def state_dir() -> Path:
    """Per-user state: run history, artifacts, sandboxes, caches (override: GPUFORGE_STATE_DIR)."""
    override = os.environ.get("GPUFORGE_STATE_DIR")
    if override:
        base = Path(override)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = Path(xdg) / "gpuforge" if xdg else Path.home() / ".local" / "state" / "gpuforge"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def cache_dir() -> Path:
    """Rebuildable downloads and builds, e.g. llama.cpp artifacts (override: GPUFORGE_CACHE_DIR,
    else ~/.cache/gpuforge). Not created here: the roles that fill it do."""
    override = os.environ.get("GPUFORGE_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "gpuforge"


def seeds_dir() -> Path:
    """The catalogs shipped with the content: models.yml, compat.yml, gpus.yml."""
    return content_root() / "seeds"


def collections_dir() -> Path:
    """An ANSIBLE_COLLECTIONS_PATH entry in which `gpuforge.infra` is this content root."""
    root = state_dir() / "collections"
    link = root / "ansible_collections" / "gpuforge" / "infra"
    target = content_root()
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".infra.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
    return root
