"""``ncp-hpo data`` sub-commands: ``fetch``, ``list``, ``info`` and ``proxies``.

Registered by :func:`register_data_commands`; each handler returns an exit code and raises
:class:`~ncp_hpo.exceptions.NCPError` subclasses for user errors (printed as one line by
:mod:`ncp_hpo.cli`).
"""

from __future__ import annotations

import argparse
from typing import Any

from ncp_hpo.cli._options import add_quiet_option
from ncp_hpo.cli._parser import add_command_group, add_deprecated_alias

__all__ = ["register_data_commands"]


def register_data_commands(subparsers: Any) -> None:
    """Add ``data {fetch,list,info,proxies}`` to the top-level ``subparsers``."""
    data = subparsers.add_parser(
        "data",
        help="fetch, list and inspect the benchmark tables",
        description="Benchmark data (NAS-Bench-MR, NAS-Bench-201): fetch, list, info, and "
        "the zero-cost proxy tables.",
        epilog="examples:\n  ncp-hpo data list\n  ncp-hpo data fetch --data-dir DIR\n"
        "  ncp-hpo data info seg --oracle\n"
        "  ncp-hpo data proxies --benchmark nas-bench-201 --jobs 2\n",
    )
    sub = add_command_group(data, dest="data_command", metavar="ACTION")

    p = sub.add_parser(
        "fetch",
        help="verify, convert and cache benchmark files (pickle-free)",
        description=(
            "Read <setting>/trainval.pkl from --data-dir DIR (offline) or download it from the "
            "pinned upstream commit, verify its SHA-256, and write a pickle-free cache "
            "(NCP_HPO_CACHE or the user cache folder). Without SETTING: everything in DIR, "
            "or every setting with a pinned checksum."
        ),
        epilog="examples:\n  ncp-hpo data fetch\n  ncp-hpo data fetch seg nas-bench-201\n"
        "  ncp-hpo data fetch --data-dir ./nas-bench-mr\n",
    )
    p.add_argument("settings", nargs="*", metavar="SETTING", help="setting names, search_list")
    p.add_argument(
        "--data-dir", dest="source", metavar="DIR", help="folder with <setting>/trainval.pkl"
    )
    add_deprecated_alias(p, "--from", "--data-dir")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept files without a pinned checksum (3ddet)",
    )
    p.add_argument("--force", action="store_true", help="convert again even if cached")
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="download timeout"
    )
    add_quiet_option(p)
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser(
        "list",
        help="show every setting and where it is available",
        description="Every benchmark setting, where it was found, its rows and checksum.",
        epilog="examples:\n  ncp-hpo data list\n  ncp-hpo data list --data-dir ./nas-bench-mr\n",
    )
    p.add_argument("--data-dir", metavar="DIR", help="also search DIR first")
    add_quiet_option(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "info",
        help="rows, metrics, main metric, paths and surrogate fidelity of one setting",
        description="Rows, metrics, main metric and file of SETTING (and, with --oracle, "
        "the fidelity of its surrogate oracle).",
        epilog="examples:\n  ncp-hpo data info nas-bench-201\n  ncp-hpo data info seg --oracle\n",
    )
    p.add_argument("setting", metavar="SETTING", help="a name from 'ncp-hpo data list'")
    p.add_argument("--data-dir", metavar="DIR", help="also search DIR first")
    p.add_argument(
        "--oracle",
        action="store_true",
        help="fit (once, then cached) the default surrogate oracle and show its fidelity",
    )
    add_quiet_option(p)
    p.set_defaults(func=_cmd_info)
    _register_proxies(sub)


def _register_proxies(sub: Any) -> None:
    p = sub.add_parser(
        "proxies",
        help="precompute a zero-cost proxy score for every code of a table (cached)",
        description=(
            "Score every code of a benchmark table on its untrained network with a data-free "
            "zero-cost proxy (synflow) and cache the scores with a checksum in the user "
            "cache (NCP_HPO_CACHE) under zerocost/. Codes already cached are not scored "
            "again. Read them with ncp_hpo.zerocost.load_scores(benchmark, proxy)."
        ),
        epilog="examples:\n  ncp-hpo data proxies --benchmark nas-bench-201 --jobs 2\n"
        "  ncp-hpo data proxies --benchmark seg --proxy synflow --force\n",
    )
    p.add_argument(
        "--benchmark", required=True, metavar="SETTING", help="a name from 'ncp-hpo data list'"
    )
    p.add_argument("--proxy", default="synflow", choices=("synflow",), help="the proxy")
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes (1 thread each)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="also search DIR first for the table")
    p.add_argument("--force", action="store_true", help="rescore everything (replace the cache)")
    add_quiet_option(p)
    p.set_defaults(func=_cmd_proxies)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _cmd_fetch(args: argparse.Namespace) -> int:
    from ncp_hpo.benchmarks import cache_dir, fetch

    def report(r: Any) -> None:
        check = "sha256 verified" if r.verified else "UNVERIFIED (no pinned checksum)"
        print(f"{r.name:<14} {r.action:<10} {r.rows:>6} rows  {check}  -> {r.path}")

    if not args.quiet:
        print(f"cache: {cache_dir()}")
    fetch(
        args.settings or None,
        source=args.source,
        allow_unverified=args.allow_unverified,
        force=args.force,
        timeout=args.timeout,
        progress=report,
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ncp_hpo.benchmarks import data_status, search_dirs

    if not args.quiet:
        dirs = search_dirs(args.data_dir)
        print("search order: " + "; ".join(f"{o}={p}" for o, p in dirs))
    header = ("SETTING", "AVAILABLE", "ROWS", "CHECKSUM")
    rows = [(s.name, s.where, s.rows, s.check) for s in data_status(data_dir=args.data_dir)]
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    for r in [header, *rows]:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ncp_hpo.benchmarks import cache_dir, find_setting, get_setting, load_benchmark

    s = get_setting(args.setting)
    loc = find_setting(s.name, args.data_dir)
    print(f"setting:      {s.name} ({s.description})")
    print(f"kind:         {s.kind}")
    print(f"upstream:     {s.url}")
    print(f"sha256:       {s.sha256 or 'none known (fetch needs --allow-unverified)'}")
    print(f"main metric:  {s.main_metric} [{s.units.get(s.main_metric, '')}]")
    print(f"cache:        {cache_dir() / s.name}")
    if loc is None:
        print(f"available:    no (run 'ncp-hpo data fetch --data-dir DIR {s.name}')")
        print(f"rows:         {s.rows} expected")
        print("metrics:      " + ", ".join(f"{m} [{s.units.get(m, '')}]" for m in s.metrics))
        return 0
    print(f"available:    {loc.origin}: {loc.path} ({loc.format})")
    table = load_benchmark(s.name, args.data_dir)
    print(f"rows:         {len(table)}")
    print("metrics:")
    for m, v in table.metrics.items():
        unit = table.units.get(m, "")
        print(f"  {m:<8} min {v.min():10.4g}  mean {v.mean():10.4g}  max {v.max():10.4g}  {unit}")
    _print_oracle(table, fit=args.oracle, data_dir=args.data_dir, quiet=args.quiet)
    return 0


def _print_oracle(table: Any, *, fit: bool, data_dir: str | None, quiet: bool) -> None:
    """The ``surrogate oracle`` lines of ``data info``: fidelity of the cached oracles."""
    import sys

    from ncp_hpo.benchmarks import cached_oracles, load_oracle

    if table.complete:
        print("surrogate oracle: none (complete table: every code is evaluated exactly)")
        return
    if fit:
        if not quiet:
            print("fitting the surrogate oracle (once; cached) ...", file=sys.stderr, flush=True)
        load_oracle(table)
    oracles = cached_oracles(table)
    if not oracles:
        where = f" --data-dir {data_dir}" if data_dir else ""
        print(
            "surrogate oracle: not fitted yet; 'ncp-hpo data info "
            f"{table.name}{where} --oracle' fits and caches it (once)"
        )
        return
    print("surrogate oracle (held-out fidelity of the main metric):")
    for o in oracles:
        c = o.config
        print(f"  {o.fidelity.summary()}")
        print(
            f"    members={c.members} max_iter={c.max_iter} lr={c.learning_rate:g} "
            f"leaves={c.max_leaf_nodes} subsample={c.subsample:g} seed={o.seed}; "
            f"fit {o.fit_seconds:.1f}s; metrics {', '.join(o.metrics)}"
        )
        print(f"    {o.path}")


def _cmd_proxies(args: argparse.Namespace) -> int:
    import sys
    import time

    from ncp_hpo.zerocost import score_table

    marks: list[int] = []

    def progress(done: int, total: int) -> None:
        if args.quiet:
            return
        tenth = 10 * done // total
        if not marks or tenth > marks[-1]:
            marks.append(tenth)
            print(f"  {done}/{total} codes scored", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    table = score_table(
        args.benchmark,
        args.proxy,
        jobs=args.jobs,
        force=args.force,
        progress=progress,
        data_dir=args.data_dir,
    )
    wall = time.perf_counter() - t0
    finite = table.scores[table.scores < float("inf")]
    print(
        f"{table.benchmark} {table.proxy}: {len(table)} codes, wall {wall:.1f} s "
        f"(jobs {args.jobs}), median {1e3 * float(_median(table.seconds)):.1f} ms per code"
    )
    print(
        f"scores: min {finite.min():.4g}  max {finite.max():.4g}  "
        f"non-finite {len(table) - len(finite)}"
    )
    print(f"cache: {table.path}")
    return 0


def _median(values: Any) -> float:
    import numpy as np

    return float(np.median(values)) if len(values) else float("nan")
