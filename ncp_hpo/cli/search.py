"""``ncp-hpo search``: train (or reuse) a setting's predictor and propagate a code through it.

Parses the options into a :class:`~ncp_hpo.benchmarks.setting_search.SearchRequest`, runs
:func:`~ncp_hpo.benchmarks.setting_search.run_setting_search` and prints its report; the
outputs (``trajectory.json``, ``trajectory.png``) go under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ncp_hpo.cli._options import QUIET_HELP
from ncp_hpo.exceptions import NCPWarning, SearchError

__all__ = ["register_search_commands"]

_EPILOG = """\
outputs under --out (default: ./ncp-search-<setting>): trajectory.json (found code, metrics,
predictor fidelity, every iteration) and trajectory.png (code dimensions over iterations as in
the paper's Fig. 3; on nas-bench-201 accuracy vs FLOPs with each step marked, Fig. 6).

Predictors are cached in <user cache>/predictors (NCP_HPO_CACHE), keyed by setting, data
checksum, split sizes, seed and predictor parameters; --no-cache trains afresh.

examples:
  ncp-hpo search --setting seg
  ncp-hpo search --setting seg --lam 0.3 --strategy winner_takes_all
  ncp-hpo search --setting seg --joint cls-50-1000,seg
  ncp-hpo search --setting video --transfer-from cls-50-1000
  ncp-hpo search --setting seg --iters 30 \\
      --init 64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64
  ncp-hpo search --setting nas-bench-201 --lam 0.2 \\
      --init '|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
"""


def register_search_commands(subparsers: Any) -> None:
    """Add ``search`` to the top-level ``subparsers``."""
    p = subparsers.add_parser(
        "search",
        help="train a setting's predictor and propagate a code through it (NCP)",
        description=(
            "Network Coding Propagation on a benchmark setting: fit (or reuse) the neural "
            "predictor on 2,000 + 500 table codes, propagate a code toward higher accuracy "
            "and fewer FLOPs, and report the found code with its predicted, exact and true "
            "metrics."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "--setting",
        required=True,
        metavar="SETTING",
        help="benchmark setting: seg, cls-50-1000, ...",
    )
    p.add_argument(
        "--lam",
        type=float,
        default=0.5,
        help="the search's FLOPs penalty, lambda of Eq. 3 (the samplers' lam): propagation "
        "trades predicted metric for fewer FLOPs, 0 for none (default: 0.5, the paper's)",
    )
    p.add_argument(
        "--strategy",
        type=_strategy,
        default="continuous",
        metavar="{continuous,winner_takes_all}",
        help="continuous (Eq. 3) or winner-takes-all (Eq. 4-6)",
    )
    p.add_argument(
        "--init",
        metavar="CODE",
        help="start code: upstream string '64_64-2_1_2_64-...-64' or 27 comma-separated "
        "integers; on nas-bench-201 an arch string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'",
    )
    p.add_argument(
        "--joint",
        metavar="S1,S2",
        help="multi-task propagation (Eq. 7) over these settings' predictors, equal weights",
    )
    p.add_argument(
        "--transfer-from",
        metavar="SETTING",
        help="first propagate this setting's predictor from the default start, then the "
        "target's from the code it found (cross-task transfer)",
    )
    p.add_argument("--iters", type=int, default=70, metavar="N", help="propagation iterations")
    p.add_argument(
        "--lr", type=float, default=3.0, help="continuous step size on the standardised code"
    )
    p.add_argument(
        "--flops",
        choices=("exact", "predictor"),
        default="exact",
        help="FLOPs term: the exact closed form or the predictor's learned head",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the split and the predictor"
    )
    p.add_argument("--epochs", type=int, default=200, metavar="N", help="predictor training epochs")
    p.add_argument(
        "--n-train", type=int, default=2000, metavar="N", help="predictor training codes"
    )
    p.add_argument("--n-val", type=int, default=500, metavar="N", help="predictor validation codes")
    p.add_argument("--out", metavar="DIR", help="output folder (default: ./ncp-search-<setting>)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="benchmark files folder (default: $NCP_HPO_DATA, then the user cache)",
    )
    p.add_argument("--no-cache", action="store_true", help="train predictors afresh, cache nothing")
    p.add_argument(
        "--no-oracle",
        action="store_true",
        help="do not fit/use the surrogate oracle for codes outside the table",
    )
    p.add_argument("--no-plot", action="store_true", help="skip trajectory.png")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    # deprecated spelling of --quiet, kept working but hidden from the help
    p.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_search)


def _strategy(text: str) -> str:
    """``continuous`` or ``winner_takes_all`` (the sampler's ``strategy=`` names; the older
    ``wta`` is read silently as ``winner_takes_all``)."""
    name = text.strip().lower().replace("-", "_")
    if name in ("continuous", "winner_takes_all", "wta"):
        return "continuous" if name == "continuous" else "winner_takes_all"
    raise argparse.ArgumentTypeError(f"expected continuous or winner_takes_all, got {text!r}")


def _settings_list(text: str, option: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise SearchError(f"{option} needs at least one setting name, got {text!r}")
    return list(dict.fromkeys(names))


def _cmd_search(args: argparse.Namespace) -> int:
    from ncp_hpo.benchmarks.setting_search import (
        STRATEGIES,
        SearchRequest,
        run_setting_search,
    )

    t_start = time.perf_counter()
    request = SearchRequest(
        setting=args.setting,
        lam=args.lam,
        strategy=next(k for k, v in STRATEGIES.items() if v == args.strategy),
        init=args.init,
        joint=tuple(_settings_list(args.joint, "--joint")) if args.joint else (),
        transfer_from=args.transfer_from,
        iters=args.iters,
        lr=args.lr,
        flops=args.flops,
        seed=args.seed,
        epochs=args.epochs,
        n_train=args.n_train,
        n_val=args.n_val,
        data_dir=args.data_dir,
        cache=not args.no_cache,
        oracle=not args.no_oracle,
    )
    with _one_line_warnings():
        outcome = run_setting_search(request, progress=not args.quiet, log=_logger(args.quiet))
    print(outcome.report())
    written = outcome.write(Path(args.out or f"ncp-search-{args.setting}"), plot=not args.no_plot)
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")
    return 0


def _logger(quiet: bool) -> Any:
    """``print``; with ``quiet``, the lines that announce work under way (ending in
    ``...``) are dropped and the results (each predictor's source and scores) kept."""
    if not quiet:
        return print
    return lambda line: None if line.endswith("...") else print(line)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show ncp_hpo warnings (an unwritable cache ...) as ``warning: ...`` lines on stderr."""
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, NCPWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
