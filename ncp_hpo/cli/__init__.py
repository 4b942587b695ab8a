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
from collections.abc import Sequence

from ncp_hpo import __version__
from ncp_hpo._numerics import pin_cpu_math
from ncp_hpo.cli._parser import HelpFormatter, Parser, add_command_group
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


__all__ = ["HelpFormatter", "build_parser", "main"]

_EPILOG = """\
one grammar for every command: options are spelled in full (no abbreviations; a typo is
named with the closest option); --quiet prints only the result (no progress bars, no
informational lines; warnings and errors still go to stderr); a trial process uses one
torch thread (--threads N asks for more): parallelism comes from --jobs and workers.

examples:
  ncp-hpo data list
  ncp-hpo search --setting seg
  ncp-hpo compare --benchmark nas-bench-201 --trials 100 --seeds 10
  ncp-hpo study --task cls --trials 20 --storage sqlite:///study.db
  ncp-hpo COMMAND --help
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ncp-hpo",
        description="Network Coding Propagation (NCP) architecture search for Optuna and Ax.",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--version", action="version", version=f"ncp-hpo {__version__}", help="print the version"
    )
    sub = add_command_group(parser, dest="command", metavar="COMMAND")
    for module_name, func_name in _REGISTRARS:
        getattr(importlib.import_module(module_name), func_name)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    pin_cpu_math()  # before anything imports torch: results depend on code, seeds, versions
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NCPError as exc:
        from ncp_hpo._secrets import one_line

        print(one_line(f"ncp-hpo: error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:  # the environment (an unwritable folder, a full disk): one line
        from ncp_hpo._secrets import one_line

        print(one_line(f"ncp-hpo: error: {_os_error_text(exc)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: one line (what stopped, how to resume)
        from ncp_hpo._secrets import one_line

        print(one_line(f"ncp-hpo: interrupted{f': {exc}' if str(exc) else ''}"), file=sys.stderr)
        return 130


def _os_error_text(exc: OSError) -> str:
    """``cannot use PATH: reason`` for file-system errors, else the error's own text."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"cannot use {str(exc.filename)!r}: {reason}"
    return reason
