"""Fixtures of tests/cli: one torch thread per test session (tests/_fixtures.py)."""

from _fixtures import _few_threads  # noqa: F401
