"""Ranges of numeric variables: the one place `check` reads them from.

Ansible argument specs carry types and choices but no minimum or maximum, so the bounds
live here, beside the specs they extend: a variable's type comes from its role's
`meta/argument_specs.yml`, its range from this table. Keys are variable names, or
`variable.option` for an option of a list of dicts (llama_cpp_instances' `port`).
A name not listed falls back to its suffix (every `*_port` is a TCP port).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Bound = tuple[float | None, float | None]  # (minimum, maximum), None: unbounded

PORT: Bound = (1, 65535)
POSITIVE: Bound = (1, None)
NON_NEGATIVE: Bound = (0, None)

RANGES: dict[str, Bound] = {
    "gateway_port": PORT,
    "vllm_port": PORT,
    "llama_cpp_instances.port": PORT,
    "gateway_rate_limit_rps": POSITIVE,
    "gateway_rate_limit_burst": NON_NEGATIVE,
    "gateway_tls_days": (1, 3650),
    "llama_cpp_keep_releases": NON_NEGATIVE,
    "ollama_keep_releases": NON_NEGATIVE,
    "gateway_rate_limit_keyless_rpm": POSITIVE,
    "gateway_conn_limit_key": POSITIVE,
    "gateway_conn_limit_address": POSITIVE,
    "front_gateway_conn_limit_key": POSITIVE,
    "gateway_max_tokens": POSITIVE,
    "gateway_hsts_max_age": NON_NEGATIVE,
    "llama_cpp_n_predict": (-1, None),  # -1: until the context is full
    "llama_cpp_ctx_size": NON_NEGATIVE,  # 0: the model's own
    "llama_cpp_instances.ctx_size": NON_NEGATIVE,
    "llama_cpp_threads": NON_NEGATIVE,  # 0: one per physical core
    "llama_cpp_instances.threads": NON_NEGATIVE,
    "llama_cpp_parallel": POSITIVE,
    "llama_cpp_instances.parallel": POSITIVE,
    "llama_cpp_n_gpu_layers": (-1, None),  # -1: all layers
    "llama_cpp_instances.n_gpu_layers": (-1, None),
    "llama_cpp_build_jobs": POSITIVE,
    "vllm_tensor_parallel_size": POSITIVE,
    "vllm_gpu_memory_utilization": (0.01, 1.0),
    "vllm_max_model_len": NON_NEGATIVE,  # 0: the model's own
    "model_store_free_margin_mb": NON_NEGATIVE,
    "model_store_download_concurrency": (0, 1000),  # 0: every host of the batch at once
    "model_store_download_rate_limit": (0, 10**12),  # bytes/s; 0: no limit
    "base_apt_cache_valid_time": NON_NEGATIVE,
    "base_apt_update_retries": NON_NEGATIVE,
    "validate_max_tokens": POSITIVE,
    "validate_max_restarts": NON_NEGATIVE,
    "validate_min_tokens_per_s": NON_NEGATIVE,
    "validate_max_ttft_s": (0.001, None),
}

SUFFIX_RANGES: dict[str, Bound] = {
    "_port": PORT,
    "_timeout": POSITIVE,
    "_retries": NON_NEGATIVE,
    "_rps": POSITIVE,
    "_rpm": POSITIVE,
    "_burst": NON_NEGATIVE,
    "_mb": NON_NEGATIVE,
}

# nginx size syntax: a number and an optional unit (k, m, g).
SIZE_RE = re.compile(r"[0-9]{1,9}[kKmMgG]?")
SIZE_VARS = ("gateway_max_body_size",)


def bound_of(name: str) -> Bound | None:
    if name in RANGES:
        return RANGES[name]
    for suffix, bound in SUFFIX_RANGES.items():
        if name.endswith(suffix):
            return bound
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None  # not a number: the type check already says so


def range_problem(name: str, value: Any) -> str | None:
    """Why `value` is out of the range declared for `name`, or None."""
    if name in SIZE_VARS:
        if isinstance(value, str) and not SIZE_RE.fullmatch(value) and "{{" not in value:
            return f"is {value!r}, not a size (a number with an optional k, m or g: 1m)"
        return None
    bound = bound_of(name)
    number = _number(value) if bound else None
    if bound is None or number is None:
        return None
    low, high = bound
    if (low is not None and number < low) or (high is not None and number > high):
        shown = f"from {low:g}" if high is None else f"from {low:g} to {high:g}"
        return f"is {number:g}, out of range (must be {shown})"
    return None


def range_problems(name: str, value: Any) -> list[tuple[str, str]]:
    """(variable, message) for `name` and, in a list of dicts, each option with a range."""
    out: list[tuple[str, str]] = []
    problem = range_problem(name, value)
    if problem:
        out.append((name, problem))
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                continue
            for option, option_value in item.items():
                key = f"{name}.{option}"
                if key in RANGES:
                    problem = range_problem(key, option_value)
                    if problem:
                        out.append((f"{name}[{index}].{option}", problem))
    return out
