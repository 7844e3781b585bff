"""gpuforge.infra.model_digest: a model file is hashed once, and again only when its size,
mtime or inode change (or deep); the record survives only as a whole file."""

from __future__ import annotations

import hashlib
import json
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

MODULE_PATH = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "model_digest.py"

md = SimpleNamespace(**runpy.run_path(str(MODULE_PATH)))  # its main() does not run


def _flip_last_byte_keeping_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    with path.open("r+b") as fh:  # in place: the inode stays
        fh.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _run(paths: list[str], record: Path, deep: bool = False) -> tuple[list[dict], int]:  # type: ignore[type-arg]
    files, keep, hashed = md.measure(paths, md.load_record(str(record)), deep, {})
    md.save_record(str(record), keep)
    return files, hashed


def test_hashed_once_then_trusted_until_size_mtime_or_inode_change(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(os.urandom(1 << 20))
    good = hashlib.sha256(model.read_bytes()).hexdigest()
    record = tmp_path / ".gpuforge-sha256.json"

    files, hashed = _run([str(model)], record)
    assert (files[0]["checksum"], files[0]["hashed"], hashed) == (good, True, 1 << 20)
    saved = json.loads(record.read_text())["files"][str(model)]
    assert saved["sha256"] == good and saved["size"] == 1 << 20
    assert saved["inode"] == model.stat().st_ino and saved["mtime_ns"] == model.stat().st_mtime_ns

    files, hashed = _run([str(model)], record)  # a no-op run reads no byte of the model
    assert (files[0]["checksum"], files[0]["hashed"], hashed) == (good, False, 0)

    _flip_last_byte_keeping_mtime(model)  # same size, mtime and inode: trusted
    assert _run([str(model)], record)[0][0]["checksum"] == good
    files, _ = _run([str(model)], record, deep=True)  # deep hashes anyway
    assert files[0]["checksum"] != good and files[0]["hashed"]

    _flip_last_byte_keeping_mtime(model)  # back to the good bytes; the record says bad
    os.utime(model)  # a new mtime: hashed again
    files, _ = _run([str(model)], record)
    assert (files[0]["checksum"], files[0]["hashed"]) == (good, True)

    replaced = tmp_path / "new"  # same bytes and mtime, new inode (a rename into place)
    replaced.write_bytes(b"x" * (1 << 20))
    os.utime(replaced, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns))
    replaced.rename(model)
    files, _ = _run([str(model)], record)
    assert files[0]["hashed"]
    assert files[0]["checksum"] == hashlib.sha256(b"x" * (1 << 20)).hexdigest()


def test_missing_files_and_verified_downloads(tmp_path: Path) -> None:
    record = tmp_path / "r.json"
    model = tmp_path / "a.bin"
    model.write_bytes(b"abc")
    claimed = hashlib.sha256(b"abc").hexdigest()
    files, keep, hashed = md.measure([str(model), str(tmp_path / "gone")], {}, False,
                                     {str(model): claimed.upper()})
    assert hashed == 0 and files[0] == {"path": str(model), "exists": True,
                                        "checksum": claimed, "hashed": False, "size": 3}
    assert files[1]["exists"] is False and files[1]["checksum"] == ""
    assert set(keep) == {str(model)}
    md.save_record(str(record), keep)
    model.unlink()  # a file that is gone leaves the record
    _, keep, _ = md.measure([], md.load_record(str(record)), False, {})
    assert keep == {}


@pytest.mark.parametrize("content", ["", "{", "[]", '{"files": 3}'])
def test_an_unreadable_record_means_hash_everything(tmp_path: Path, content: str) -> None:
    record = tmp_path / "r.json"
    record.write_text(content)
    assert md.load_record(str(record)) == {}
    model = tmp_path / "a.bin"
    model.write_bytes(b"abc")
    assert md.measure([str(model)], md.load_record(str(record)), False, {})[2] == 3
