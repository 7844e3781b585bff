"""Read the model catalog: the same seeds/models.yml the `model_store` role loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolkit.errors import InvalidInput
from toolkit.paths import seeds_dir

SOURCE_TYPES = ("url", "wheel", "huggingface", "controller", "mirror")


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Model:
    name: str
    format: str
    revision: str
    licence: str
    size_bytes: int
    ram_mb: int
    vram_mb: int
    files: tuple[ModelFile, ...]
    source: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "revision": self.revision,
                "licence": self.licence, "size_bytes": self.size_bytes, "ram_mb": self.ram_mb,
                "vram_mb": self.vram_mb, "source": self.source.get("type", ""),
                "files": [{"name": f.name, "sha256": f.sha256, "size": f.size}
                          for f in self.files]}


def catalog_path() -> Path:
    return seeds_dir() / "models.yml"


def _model(name: str, entry: dict[str, Any]) -> Model:
    try:
        files = tuple(ModelFile(str(f["name"]), str(f["sha256"]).lower(), int(f.get("size", 0)))
                      for f in entry["files"])
        source = dict(entry.get("source") or {})
        if source.get("type") not in SOURCE_TYPES:
            raise ValueError(f"source type {source.get('type')!r} is not one of {SOURCE_TYPES}")
        return Model(name=name, format=str(entry["format"]), revision=str(entry["revision"]),
                     licence=str(entry.get("licence", "")),
                     size_bytes=int(entry.get("size_bytes", sum(f.size for f in files))),
                     ram_mb=int(entry.get("ram_mb", 0)), vram_mb=int(entry.get("vram_mb", 0)),
                     files=files, source=source, description=str(entry.get("description", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"model {name!r} in the catalog is malformed: {exc}",
                           hint="each model needs format, revision, files (name, sha256) "
                                "and a source; see the header of seeds/models.yml") from exc


def load_catalog(path: Path | None = None) -> dict[str, Model]:
    path = path or catalog_path()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {name: _model(name, entry) for name, entry in (data.get("models") or {}).items()}


def get_model(name: str, catalog: dict[str, Model] | None = None) -> Model:
    catalog = catalog if catalog is not None else load_catalog()
    if name not in catalog:
        raise InvalidInput(f"unknown model {name!r}",
                           hint=f"known models: {', '.join(sorted(catalog))} "
                                "(`gpuforge models list`)")
    return catalog[name]
