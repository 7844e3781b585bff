"""Named, scoped keys on the host gateway: the controller key store's names, hashes and models
become the maps nginx reads (api-keys.map, key-names.map, key-models.map); an unnamed key
(environment or key file) keeps working for every model, and no key reaches a file."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "roles" / "gateway" / "templates"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def render(name: str, **values: object) -> str:
    # The role's templates as Ansible renders them (trim_blocks), with its two filters.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["hash"] = lambda text, _alg: sha(text)
    env.filters["to_json"] = json.dumps
    return env.get_template(name).render(ansible_managed="managed", gateway_fleet_key_file="",
                                         **values)


def entries(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([0-9a-f]{64}) (.+);$", text, re.M))


UNNAMED = ["gf-env-key-0123456789abcdef", "gf-file-key-0123456789abcdef"]
STORE = [{"name": "team-a", "sha256": sha("gf-team-a-0123456789"), "models": ["smol", "big:7b"]},
         {"name": "ops", "sha256": sha("gf-ops-0123456789abcdef"), "models": []},
         # the same key also in the key file: accepted once, under its name
         {"name": "shared", "sha256": sha(UNNAMED[1])}]


def test_every_key_is_accepted_once_and_only_hashes_are_written() -> None:
    text = render("api-keys.map.j2", gateway_api_keys=UNNAMED + UNNAMED[:1],
                  __gateway_named_keys=STORE)
    accepted = re.findall(r"^([0-9a-f]{64}) 1;$", text, re.M)
    assert sorted(accepted) == sorted({sha(UNNAMED[0]), *(k["sha256"] for k in STORE)})
    assert not any(k in text for k in UNNAMED)


def test_names_and_models_by_hash() -> None:
    names = entries(render("key-names.map.j2", __gateway_named_keys=STORE))
    assert names == {k["sha256"]: k["name"] for k in STORE}
    models = entries(render("key-models.map.j2", __gateway_named_keys=STORE))
    # Only the scoped key is limited; its value is a JSON list nginx passes to njs.
    assert models == {STORE[0]["sha256"]: "'[\"smol\", \"big:7b\"]'"}
    assert json.loads(models[STORE[0]["sha256"]].strip("'")) == ["smol", "big:7b"]


def test_without_a_key_store_the_maps_are_empty_and_unnamed_keys_stay() -> None:
    assert entries(render("key-names.map.j2", __gateway_named_keys=[])) == {}
    text = render("api-keys.map.j2", gateway_api_keys=UNNAMED)
    assert sorted(re.findall(r"^([0-9a-f]{64}) 1;$", text, re.M)) == sorted(map(sha, UNNAMED))



def test_daily_quotas_by_hash_only_for_keys_that_have_one() -> None:
    store = [*STORE[:2], {"name": "metered", "sha256": sha("gf-metered-0123456789"),
                          "models": [], "tokens_per_day": 5000}]
    quotas = entries(render("key-quotas.map.j2", __gateway_named_keys=store))
    assert quotas == {sha("gf-metered-0123456789"): "5000"}


def test_expiry_by_hash_only_for_keys_that_expire() -> None:
    store = [*STORE[:2], {"name": "temp", "sha256": sha("gf-temp-0123456789ab"), "models": [],
                          "expires": "2027-01-01T00:00:00Z"}]
    assert entries(render("key-expiry.map.j2", __gateway_named_keys=store)) == {
        sha("gf-temp-0123456789ab"): "2027-01-01T00:00:00Z"}
