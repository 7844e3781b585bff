"""The controller key store and `gpuforge keys`: keys are shown once and stored as sha256
hashes only, in a 0600 file; add, rotate and revoke change exactly the named entry; bad names,
models, quotas and stores are refused with exit 3 naming the file."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from toolkit.cli.app import main
from toolkit.errors import InvalidInput
from toolkit.keystore import add, load, revoke, rotate, to_dicts


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_add_rotate_revoke_keep_hashes_only_in_a_private_file(tmp_path: Path) -> None:
    store = tmp_path / "state" / "api-keys.json"
    a = add(store, "team-a", ["smol", "big:7b"], tokens_per_day=1000)
    b = add(store, "ops", [])
    assert a.startswith("gf-") and len(a) >= 40 and a != b
    assert store.stat().st_mode & 0o777 == 0o600
    text = store.read_text(encoding="utf-8")
    assert a not in text and b not in text and sha(a) in text
    keys = load(store)
    assert [(k.name, k.sha256, k.models, k.tokens_per_day) for k in keys] == [
        ("team-a", sha(a), ["smol", "big:7b"], 1000), ("ops", sha(b), [], 0)]
    new = rotate(store, "team-a")
    after = {k.name: k for k in load(store)}
    assert after["team-a"].sha256 == sha(new) != sha(a)
    assert after["team-a"].models == ["smol", "big:7b"] and after["ops"].sha256 == sha(b)
    revoke(store, "ops")
    assert [k.name for k in load(store)] == ["team-a"]
    assert to_dicts(load(store))[0]["id"] == sha(new)[:8]


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    store = tmp_path / "api-keys.json"
    add(store, "team-a", [])
    with pytest.raises(InvalidInput, match="a key named 'team-a' exists"):
        add(store, "team-a", [])
    with pytest.raises(InvalidInput, match="name 'a b' must be"):
        add(store, "a b", [])
    with pytest.raises(InvalidInput, match="models must be a list of model names"):
        add(store, "x", ["bad'model"])
    with pytest.raises(InvalidInput, match="tokens_per_day must be"):
        add(store, "x", [], tokens_per_day=-1)
    with pytest.raises(InvalidInput, match=r"\(x\): requests_per_minute must be a whole number "
                       r"from 0 \(the gateway's shared limit\) to 600000; got -5"):
        add(store, "x", [], requests_per_minute=-5)
    with pytest.raises(InvalidInput, match=r"max_concurrent must be .* to 65535; got 70000"):
        add(store, "x", [], max_concurrent=70000)
    with pytest.raises(InvalidInput, match="no key named 'nobody'"):
        revoke(store, "nobody")
    store.write_text(json.dumps({"keys": [{"name": "x", "sha256": "0" * 64}] * 2}))
    with pytest.raises(InvalidInput, match="a name is listed twice"):
        load(store)
    store.write_text("{not json")
    with pytest.raises(InvalidInput, match=f"key store {store}: cannot be read as JSON"):
        load(store)
    assert load(tmp_path / "absent.json") == []


def test_cli_prints_the_key_once_and_lists_names_without_hashes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "api-keys.json")
    assert main(["keys", "add", "team-a", "--models", "smol", "--tokens-per-day", "50",
                 "--store", store, "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    assert main(["keys", "list", "--store", store, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"name": "team-a", "id": sha(key)[:8], "models": ["smol"],
                       "tokens_per_day": 50, "expires": None, "requests_per_minute": None,
                       "max_concurrent": None, "created": listed[0]["created"]}]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "json-contract.md").read_text(
        encoding="utf-8").split("## `gpuforge keys list --json`", 1)[1]
    block = re.search(r"```json\n(.*?)```", doc, re.S)
    assert block and set(json.loads(block.group(1))[0]) == set(listed[0])
    assert main(["keys", "rotate", "team-a", "--store", store]) == 0
    rotated = capsys.readouterr().out.strip()
    assert rotated != key and load(Path(store))[0].sha256 == sha(rotated)
    assert main(["keys", "revoke", "nobody", "--store", store]) == 3
    assert "no key named 'nobody'" in capsys.readouterr().err


def test_expiry_is_a_span_or_a_utc_time_never_in_the_past(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from toolkit.keystore import parse_expiry

    now = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert parse_expiry("30d", now) == "2027-01-02T06:00:00Z"
    assert parse_expiry("12h", now) == "2026-12-03T18:00:00Z"
    assert parse_expiry("2027-01-01", now) == "2027-01-01T00:00:00Z"
    assert parse_expiry("2027-01-01T02:00:00+02:00", now) == "2027-01-01T00:00:00Z"
    assert parse_expiry(None, now) == ""
    with pytest.raises(InvalidInput, match="in the past"):
        parse_expiry("2026-01-01", now)
    with pytest.raises(InvalidInput, match="--expires 'soon'"):
        parse_expiry("soon", now)
    store = tmp_path / "api-keys.json"
    add(store, "temp", [], expires="2027-01-01T00:00:00Z")
    rotate(store, "temp")
    assert load(store)[0].expires == "2027-01-01T00:00:00Z"  # a rotated key keeps its expiry
    store.write_text(json.dumps({"keys": [{"name": "x", "sha256": "0" * 64,
                                           "expires": "tomorrow"}]}))
    with pytest.raises(InvalidInput, match="expires must be a UTC time"):
        load(store)


def test_own_limits_are_kept_through_rotation_and_listed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "api-keys.json"
    assert main(["keys", "add", "slow", "--requests-per-minute", "3", "--max-concurrent", "1",
                 "--store", str(store), "--json"]) == 0
    capsys.readouterr()
    rotate(store, "slow")
    (entry,) = load(store)
    assert (entry.requests_per_minute, entry.max_concurrent) == (3, 1)
    assert main(["keys", "list", "--store", str(store)]) == 0
    table = capsys.readouterr().err
    assert "requests/min" in table and "concurrent" in table and " 3 " in table
    # A store written before these fields existed reads as "the shared limits".
    store.write_text(json.dumps({"keys": [{"name": "old", "sha256": "0" * 64}]}))
    assert to_dicts(load(store))[0]["requests_per_minute"] is None
    store.write_text(json.dumps({"keys": [{"name": "old", "sha256": "0" * 64,
                                           "max_concurrent": "4"}]}))
    with pytest.raises(InvalidInput, match=r"entry 0 \(old\): max_concurrent must be"):
        load(store)
