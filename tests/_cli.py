"""Shared helpers of the command-line tests: run ``ncp-hpo`` in-process, list its parsers."""

from __future__ import annotations

import argparse

import pytest

from ncp_hpo.cli import build_parser, main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``ncp-hpo argv`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub-)command's parser by its full name (``""`` for ``ncp-hpo``, ``"data list"``)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}".strip())

    walk(build_parser(), "")
    return found
