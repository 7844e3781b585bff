"""The controller key store: named, scoped API keys, stored as sha256 hashes only.

One JSON file (default `<state dir>/api-keys.json`, mode 0600, written atomically), read by
the gateway role (variable gateway_key_store) and written by `gpuforge keys`:

    {"version": 1, "keys": [{"name": "team-a", "sha256": "<64 hex>", "models": ["m"],
                             "tokens_per_day": 100000, "expires": "2027-01-01T00:00:00Z",
                             "requests_per_minute": 60, "max_concurrent": 4,
                             "created": "<ISO time>"}]}

A key is generated here, shown once to whoever runs `gpuforge keys add|rotate`, and never
written anywhere: the store keeps its hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidInput
from toolkit.paths import state_dir

STORE_NAME = "api-keys.json"
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MODEL = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")
KEY_PREFIX = "gf-"
EXPIRES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_SPAN = re.compile(r"^(\d+)([hdw])$")
# A key's own limits (0: the gateway's shared per-key limits). nginx takes any positive rate;
# these ceilings only catch a typo that would make a limit meaningless.
MAX_REQUESTS_PER_MINUTE = 600000
MAX_CONCURRENT = 65535


@dataclass
class NamedKey:
    name: str
    sha256: str
    models: list[str] = field(default_factory=list)
    tokens_per_day: int = 0  # 0: no quota
    expires: str = ""  # ISO 8601 UTC (...Z); "": never
    requests_per_minute: int = 0  # 0: the gateway's per-key rate (gateway_rate_limit_rps)
    max_concurrent: int = 0  # 0: the gateway's per-key limit (gateway_conn_limit_key)
    created: str = ""


def default_store() -> Path:
    return state_dir() / STORE_NAME


def new_key() -> str:
    """A fresh key: 'gf-' and 32 random bytes in URL-safe base64 (46 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_entry(entry: Any, where: str) -> NamedKey:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where}: not a mapping")
    name, sha, models = entry.get("name"), entry.get("sha256"), entry.get("models", [])
    quota = entry.get("tokens_per_day", 0)
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(f"{where}: name {name!r} must be 1-64 characters from A-Z a-z 0-9 . _ -")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise InvalidInput(f"{where} ({name}): sha256 must be 64 lowercase hex digits")
    if not isinstance(models, list) or not all(isinstance(m, str) and MODEL.match(m)
                                               for m in models):
        raise InvalidInput(f"{where} ({name}): models must be a list of model names "
                           "(characters A-Z a-z 0-9 . _ : / @ + -)")
    if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
        raise InvalidInput(f"{where} ({name}): tokens_per_day must be a whole number >= 0")
    expires = entry.get("expires", "")
    if not isinstance(expires, str) or (expires and not EXPIRES.match(expires)):
        raise InvalidInput(f"{where} ({name}): expires must be a UTC time like "
                           "2027-01-01T00:00:00Z (or empty: never)")
    limits = {field: _whole(entry.get(field, 0), ceiling, f"{where} ({name}): {field}")
              for field, ceiling in (("requests_per_minute", MAX_REQUESTS_PER_MINUTE),
                                     ("max_concurrent", MAX_CONCURRENT))}
    return NamedKey(name=name, sha256=sha, models=list(models), tokens_per_day=quota,
                    expires=expires, created=str(entry.get("created", "")), **limits)


def _whole(value: Any, ceiling: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= ceiling:
        raise InvalidInput(f"{what} must be a whole number from 0 (the gateway's shared limit) "
                           f"to {ceiling}; got {value!r}")
    return value


def parse_expiry(text: str | None, now: datetime | None = None) -> str:
    """--expires: a span from now (12h, 30d, 2w), an ISO date or time (UTC without an offset);
    returned as the store keeps it (...Z). None or empty: never."""
    if not text:
        return ""
    now = now or datetime.now(UTC)
    match = _SPAN.match(text.strip())
    if match:
        unit = {"h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        when = now + timedelta(**{unit: int(match.group(1))})
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"--expires {text!r}: neither a span (12h, 30d, 2w) nor an ISO "
                               "8601 date or time", hint="e.g. --expires 30d or "
                               "--expires 2027-01-01") from None
        when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidInput(f"--expires {text!r}: in the past")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(path: Path) -> list[NamedKey]:
    """The store's keys ([] when the file does not exist)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"key store {path}: cannot be read as JSON ({exc})") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise InvalidInput(f"key store {path}: no `keys` list")
    keys = [check_entry(e, f"key store {path}: entry {i}") for i, e in enumerate(entries)]
    for attr in ("name", "sha256"):
        values = [getattr(k, attr) for k in keys]
        if len(set(values)) != len(values):
            raise InvalidInput(f"key store {path}: a {attr} is listed twice")
    return keys


def save(path: Path, keys: list[NamedKey]) -> None:
    """Write the store atomically, readable and writable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".api-keys-", dir=path.parent)
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "keys": [asdict(k) for k in keys]}, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _find(keys: list[NamedKey], name: str, path: Path) -> NamedKey:
    for key in keys:
        if key.name == name:
            return key
    raise InvalidInput(f"key store {path}: no key named {name!r}",
                       hint="`gpuforge keys list` shows the names")


def add(path: Path, name: str, models: list[str], tokens_per_day: int = 0,
        expires: str = "", requests_per_minute: int = 0, max_concurrent: int = 0) -> str:
    """Add a named key; returns the key (the only time it exists outside its user's hands)."""
    keys = load(path)
    if any(k.name == name for k in keys):
        raise InvalidInput(f"key store {path}: a key named {name!r} exists",
                           hint=f"`gpuforge keys rotate {name}` replaces it")
    key = new_key()
    entry = check_entry({"name": name, "sha256": digest(key), "models": models,
                         "tokens_per_day": tokens_per_day, "expires": expires,
                         "requests_per_minute": requests_per_minute,
                         "max_concurrent": max_concurrent}, "new key")
    entry.created = datetime.now(UTC).isoformat(timespec="seconds")
    save(path, [*keys, entry])
    return key


def revoke(path: Path, name: str) -> None:
    keys = load(path)
    gone = _find(keys, name, path)
    save(path, [k for k in keys if k is not gone])


def rotate(path: Path, name: str) -> str:
    """A new key for an existing name, same models, quota, expiry and limits; the old key
    stops working."""
    keys = load(path)
    entry = _find(keys, name, path)
    key = new_key()
    entry.sha256 = digest(key)
    entry.created = datetime.now(UTC).isoformat(timespec="seconds")
    save(path, keys)
    return key


def parse_models(text: str | None) -> list[str]:
    return [m.strip() for m in (text or "").split(",") if m.strip()]


def to_dicts(keys: list[NamedKey]) -> list[dict[str, Any]]:
    """What `gpuforge keys list` shows: no hash beyond the 8-digit id the log would use."""
    return [{"name": k.name, "id": k.sha256[:8], "models": k.models or ["*"],
             "tokens_per_day": k.tokens_per_day or None, "expires": k.expires or None,
             "requests_per_minute": k.requests_per_minute or None,
             "max_concurrent": k.max_concurrent or None, "created": k.created} for k in keys]
