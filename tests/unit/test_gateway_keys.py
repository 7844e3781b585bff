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


COMMON = TEMPLATES.parents[1] / "common" / "templates"


def render(name: str, **values: object) -> str:
    # The role's templates as Ansible renders them (trim_blocks), with its two filters.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([TEMPLATES, COMMON]),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
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


LIMITED = [*STORE[:2],
           {"name": "slow", "sha256": sha("gf-slow-0123456789abc"), "models": [],
            "requests_per_minute": 3, "max_concurrent": 0},
           {"name": "slow-too", "sha256": sha("gf-slow-too-0123456789"), "models": [],
            "requests_per_minute": 3, "max_concurrent": 2},
           {"name": "single", "sha256": sha("gf-single-0123456789a"), "models": [],
            "max_concurrent": 1}]


def _map_block(text: str, variable: str, hash_var: str = "gf_key_hash") -> dict[str, str]:
    block = re.search(rf"^map \${hash_var} \$" + variable + r" \{\n(.*?)^\}", text, re.M | re.S)
    assert block, f"no map of ${variable} in:\n{text}"
    return dict(re.findall(r"^\s+(\S+) (.+);$", block.group(1), re.M))


def limits(name: str, keys: list[dict[str, object]], prefix: str = "gf",
           hash_var: str = "gf_key_hash", chars: int = 64) -> str:
    """common's key-limits templates as the host gateway (or, with gff, the front) renders them."""
    return render(name, common_named_keys=keys, common_key_limits_prefix=prefix,
                  common_key_limits_hash=hash_var, common_key_limits_site="gateway",
                  common_key_limits_hash_chars=chars)


def test_own_rates_and_concurrency_get_one_zone_per_limit_counting_only_their_keys() -> None:
    http = limits("key-limits.conf.j2", LIMITED)
    server = limits("key-limits-server.conf.j2", LIMITED)
    slow, slow_too, single = (k["sha256"] for k in LIMITED[2:])
    # Keys with their own limit leave the shared zones; the others stay in them (default 0).
    assert _map_block(http, "gf_own_rate") == {"default": "0", slow: "1", slow_too: "1"}
    assert _map_block(http, "gf_own_conn") == {"default": "0", slow_too: "1", single: "1"}
    # Two keys with the same rate share a zone, each counted by its own hash.
    assert _map_block(http, "gf_rate_3") == {"default": '""', slow: "$gf_key_hash",
                                             slow_too: "$gf_key_hash"}
    assert _map_block(http, "gf_conn_1") == {"default": '""', single: "$gf_key_hash"}
    assert _map_block(http, "gf_conn_2") == {"default": '""', slow_too: "$gf_key_hash"}
    assert re.findall(r"^limit_req_zone \$(\S+) zone=(\S+) rate=(\S+);$", http, re.M) == [
        ("gf_rate_3", "gf_key_rpm_3:1m", "3r/m")]
    assert re.findall(r"^limit_conn_zone \$(\S+) zone=(\S+);$", http, re.M) == [
        ("gf_conn_1", "gf_key_conn_1:1m"), ("gf_conn_2", "gf_key_conn_2:1m")]
    # A minute's worth at once (burst = rate - 1, nodelay), then the rate.
    assert re.findall(r"^limit_\w+ .*;$", server, re.M) == [
        "limit_req zone=gf_key_rpm_3 burst=2 nodelay;", "limit_conn gf_key_conn_1 1;",
        "limit_conn gf_key_conn_2 2;"]
    assert not any(k in http + server for k in ("gf-slow-0123456789abc", "gf-single-0123456789a"))


def test_without_own_limits_every_key_stays_in_the_shared_zones() -> None:
    http = limits("key-limits.conf.j2", STORE)
    assert _map_block(http, "gf_own_rate") == {"default": "0"}
    assert _map_block(http, "gf_own_conn") == {"default": "0"}
    assert "limit_req_zone" not in http and "limit_conn_zone" not in http
    assert not re.search(r"^limit_", limits("key-limits-server.conf.j2", STORE), re.M)
    conf = (TEMPLATES / "gateway.conf.j2").read_text(encoding="utf-8")
    # The shared zones count a key only when it has no limit of its own.
    assert 'map "$gf_key_ok:$gf_own_rate" $gf_valid_key {\n    "1:0" $gf_key_hash;' in conf
    assert 'map "$gf_key_ok:$gf_own_conn" $gf_shared_conn_key {\n    "1:0" $gf_key_hash;' in conf


def test_the_front_accepts_named_keys_by_hash_and_forwards_only_theirs() -> None:
    """The front gateway's njs module: unnamed and named keys are accepted by sha256; the named
    keys' scopes are kept by hash (forward() sends that hash to the host gateways)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES.parents[1] / "front_gateway"
                                                            / "templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["hash"] = lambda text, _alg: sha(text)
    env.filters["to_json"] = json.dumps
    env.filters["items2dict"] = lambda items, key_name, value_name: {
        i[key_name]: i[value_name] for i in items}
    text = env.get_template("front.js.j2").render(
        ansible_managed="managed", __front_gateway_keys=UNNAMED,
        __front_gateway_named_keys=STORE, __front_gateway_pools=[{"id": 1, "model": "smol"}])
    keys = json.loads(re.search(r"^var KEYS = (.*);$", text, re.M).group(1))  # type: ignore[union-attr]
    named = json.loads(re.search(r"^var NAMED = (.*);$", text, re.M).group(1))  # type: ignore[union-attr]
    assert sorted(keys) == sorted({*map(sha, UNNAMED), *(k["sha256"] for k in STORE)})
    assert named == {k["sha256"]: k.get("models", []) for k in STORE}
    assert not any(k in text for k in UNNAMED)



def test_the_front_counts_own_limits_fleet_wide_with_its_own_names() -> None:
    """The same templates for the front gateway: its variables and zones (gff_), keyed by the
    front's $gff_key, so a key's own limit holds across every host behind the front."""
    http = limits("key-limits.conf.j2", LIMITED, prefix="gff", hash_var="gff_key_id", chars=32)
    server = limits("key-limits-server.conf.j2", LIMITED, prefix="gff", hash_var="gff_key_id",
                    chars=32)
    slow = str(LIMITED[2]["sha256"])
    # Keyed by the first 32 hex digits (the front keeps nginx's default map bucket).
    assert _map_block(http, "gff_rate_3", "gff_key_id") == {
        "default": '""', slow[:32]: "$gff_key_id", str(LIMITED[3]["sha256"])[:32]: "$gff_key_id"}
    assert "gf_key_hash" not in http and not re.search(r"\bgf_", http + server)
    assert "limit_req zone=gff_key_rpm_3 burst=2 nodelay;" in server
    conf = (TEMPLATES.parents[1] / "front_gateway" / "templates" / "front.conf.j2").read_text(
        encoding="utf-8")
    assert "include {{ front_gateway_config_dir }}/key-limits.conf;" in conf
    assert "include {{ front_gateway_config_dir }}/key-limits-server.conf;" in conf
