"""Grafana provisioning written by the prometheus role (prometheus_grafana_provisioning_dir):
the datasource points at this Prometheus, the dashboard provider at the directory the
dashboard is copied to, and the dashboard JSON loads and picks a datasource of the
provisioned type. (The molecule scenario writes them on a host and checks the URL answers.)"""

from __future__ import annotations

import json
import re

import jinja2
import pytest
import yaml

from tests.unit.test_monitoring_rules import ROLE, render

DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))


def datasource_url(**over: str) -> str:
    """The role's default prometheus_grafana_datasource_url, resolved as Ansible would."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["regex_replace"] = lambda value, pattern, repl: re.sub(pattern, repl, value)
    return env.from_string(DEFAULTS["prometheus_grafana_datasource_url"]).render(
        **{**DEFAULTS, **over})


@pytest.mark.parametrize(("listen", "url"), [
    ("127.0.0.1", "http://127.0.0.1:9090"),
    # Listening everywhere: Grafana on this host goes through loopback.
    ("0.0.0.0", "http://127.0.0.1:9090"),
    ("10.88.0.5", "http://10.88.0.5:9090"),
])
def test_datasource_url_follows_the_listen_address(listen: str, url: str) -> None:
    assert datasource_url(prometheus_listen_address=listen) == url


def test_provisioned_datasource_and_dashboard_provider() -> None:
    url = datasource_url()
    datasource = yaml.safe_load(render("grafana-datasource.yml.j2",
                                       prometheus_grafana_datasource_url=url))
    assert datasource["apiVersion"] == 1
    (ds,) = datasource["datasources"]
    assert (ds["type"], ds["url"], ds["access"], ds["isDefault"]) == (
        "prometheus", "http://127.0.0.1:9090", "proxy", False)
    assert ds["jsonData"]["timeInterval"] == DEFAULTS["prometheus_scrape_interval"]
    provider = yaml.safe_load(render("grafana-dashboard.yml.j2"))
    (p,) = provider["providers"]
    assert p["type"] == "file"
    assert p["options"]["path"] == DEFAULTS["prometheus_grafana_dashboards_dir"]
    # The task copies the dashboard into that same directory.
    tasks = yaml.safe_load((ROLE / "tasks" / "grafana.yml").read_text(encoding="utf-8"))
    copy = next(t["ansible.builtin.copy"] for t in tasks if "ansible.builtin.copy" in t)
    assert copy["dest"] == "{{ prometheus_grafana_dashboards_dir }}/gpuforge-fleet.json"
    assert (ROLE / "files" / copy["src"]).is_file()


def test_dashboard_loads_and_selects_a_prometheus_datasource() -> None:
    dashboard = json.loads((ROLE / "files" / "dashboards" / "gpuforge-fleet.json")
                           .read_text(encoding="utf-8"))
    (var,) = dashboard["templating"]["list"]
    assert (var["name"], var["type"], var["query"]) == ("datasource", "datasource", "prometheus")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) == 21
    # No two panels overlap on Grafana's 24-column grid.
    cells = [(p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy) for p in dashboard["panels"]
             for dx in range(p["gridPos"]["w"]) for dy in range(p["gridPos"]["h"])]
    assert len(cells) == len(set(cells))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
