"""The ``ncp-hpo`` command line.

Each subsystem registers its own sub-commands (``register_*_commands(subparsers)``) and
keeps heavy imports inside its handlers, so ``ncp-hpo --help`` stays fast. A handler
returns an exit code. User errors (:class:`ncp_hpo.exceptions.NCPError`, bad arguments)
print one line on stderr and exit with status 2 - never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from ncp_hpo import __version__
from ncp_hpo._numerics import pin_cpu_math
from ncp_hpo.exceptions import NCPError

# (module, registrar) pairs; each registrar adds sub-parsers with ``set_defaults(func=...)``.
_REGISTRARS: tuple[tuple[str, str], ...] = (
    ("ncp_hpo.cli.data", "register_data_commands"),
    ("ncp_hpo.cli.search", "register_search_commands"),
    ("ncp_hpo.cli.compare", "register_compare_commands"),
    ("ncp_hpo.cli.train", "register_train_commands"),
    ("ncp_hpo.cli.study", "register_study_commands"),
    ("ncp_hpo.cli.worker", "register_worker_commands"),
)


_EPILOG = """\
examples:
  ncp-hpo data list
  ncp-hpo search --setting seg
  ncp-hpo compare --benchmark nas-bench-201 --trials 100 --seeds 10
  ncp-hpo study --task cls --trials 20 --storage sqlite:///study.db
  ncp-hpo COMMAND --help
"""


class HelpFormatter(argparse.HelpFormatter):
    """One help style for every sub-command.

    Defaults are shown one way, ``(default: X)`` at the end of the help: added here for
    literal defaults, written by hand (same words) where the default is described. Text
    paragraphs are wrapped; a paragraph with indented lines (examples) is kept as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if text is argparse.SUPPRESS or "(default" in text or not action.option_strings:
            return action.help
        if action.default in (None, False, True, argparse.SUPPRESS) or action.default == []:
            return action.help
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.strip("\n").split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith(" ") for line in lines) or lines[0].endswith(":"):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(
                    textwrap.fill(
                        " ".join(lines), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
        return "\n\n".join(out)


class _Parser(argparse.ArgumentParser):
    """argparse parser with :class:`HelpFormatter` and one-line usage errors.

    Every error, from argparse or from a handler, reads ``ncp-hpo: error: ...`` and exits 2.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        from ncp_hpo.runtime import one_line

        self.exit(2, one_line(f"ncp-hpo: error: {message} (see '{self.prog} --help')") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ncp-hpo",
        description="Network Coding Propagation (NCP) architecture search for Optuna and Ax.",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--version", action="version", version=f"ncp-hpo {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name, func_name in _REGISTRARS:
        getattr(importlib.import_module(module_name), func_name)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    pin_cpu_math()  # before anything imports torch: results depend on code, seeds, versions
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except NCPError as exc:
        from ncp_hpo.runtime import one_line

        print(one_line(f"ncp-hpo: error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:  # the environment (an unwritable folder, a full disk): one line
        from ncp_hpo.runtime import one_line

        print(one_line(f"ncp-hpo: error: {_os_error_text(exc)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: one line (what stopped, how to resume)
        from ncp_hpo.runtime import one_line

        print(one_line(f"ncp-hpo: interrupted{f': {exc}' if str(exc) else ''}"), file=sys.stderr)
        return 130


def _os_error_text(exc: OSError) -> str:
    """``cannot use PATH: reason`` for file-system errors, else the error's own text."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"cannot use {str(exc.filename)!r}: {reason}"
    return reason
