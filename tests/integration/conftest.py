"""Integration tests use the sandbox fixtures of tests/conftest.py."""

from tests.sandbox import Sandbox

__all__ = ["Sandbox"]
