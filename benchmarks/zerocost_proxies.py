"""Zero-cost proxies against the benchmark tables (issue 22, item 2).

For each benchmark with a precomputed synflow table (``ncp-hpo data proxies``), prints the
Spearman and Kendall tau-b of the score with the table's main accuracy over every cached
table code, the median seconds per code, the precompute's wall time, and the figures
published by Abdelfattah et al. beside them. The number of parameters is ranked the same
way as a baseline.

NASWOT needs a minibatch of the task's data, and the tables' images (ImageNet16-120,
Cityscapes, ...) are not here. ``--naswot-cells N`` scores N random NAS-Bench-201 cells on
a 64-image minibatch of the embedded digits data (resized to 16x16, a stand-in, not the
table's data) and reports its rank correlation with the ImageNet16-120 accuracy under that
label. ``--resolution-check N`` rescores N codes of each NAS-Bench-MR table at 128x128 and
reports the Spearman with the cached 64x64 scores.

    export NCP_HPO_DATA=<folder of the benchmark tables>
    nice -n 5 ncp-hpo data proxies --benchmark nas-bench-201 --jobs 2
    python benchmarks/zerocost_proxies.py --naswot-cells 500 \\
        --out benchmarks/results/zerocost-proxies.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ncp_hpo._numerics import pin_cpu_math

pin_cpu_math()  # before torch loads

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from ncp_hpo._numerics import environment_line  # noqa: E402

if TYPE_CHECKING:
    from torch import Tensor

PUBLISHED = {
    # Abdelfattah, Mehrotra, Dudziak, Lane: "Zero-Cost Proxies for Lightweight NAS",
    # ICLR 2021, NAS-Bench-201 table: Spearman rho of synflow with the test accuracy over
    # all 15,625 cells on CIFAR-10 / CIFAR-100 / ImageNet16-120.
    ("nas-bench-201", "synflow"): "Spearman 0.74 / 0.76 / 0.75 (CIFAR-10 / -100 / "
    "ImageNet16-120), Abdelfattah et al., ICLR 2021",
}


def _correlations(score: np.ndarray, acc: np.ndarray) -> tuple[float, float]:
    rho = float(stats.spearmanr(score, acc).statistic)
    tau = float(stats.kendalltau(score, acc).statistic)
    return rho, tau


def _table_rows(benchmarks: list[str]) -> list[str]:
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.zerocost import ProxyCacheError, load_scores
    from ncp_hpo.zerocost._cache import cache_paths
    from ncp_hpo.zerocost._targets import get_target

    lines = [
        "| benchmark | signal | network | codes | Spearman | Kendall tau-b | median s/code "
        "| precompute wall | published |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for name in benchmarks:
        table = load_benchmark(name)
        acc = table.metrics[table.main_metric]
        try:
            scores = load_scores(name, "synflow")
        except ProxyCacheError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        meta = json.loads(cache_paths(name, "synflow")[1].read_text())
        run = meta.get("last_run") or {}
        wall = (
            f"{run['wall_seconds']:.0f} s ({run['scored']} codes, {run['jobs']} jobs)"
            if run
            else "-"
        )
        synflow = scores.lookup(table.codes)
        covered = ~np.isnan(synflow)
        rho, tau = _correlations(synflow[covered], acc[covered])
        med = statistics.median(scores.seconds.tolist())
        pub = PUBLISHED.get((name, "synflow"), "-")
        net = get_target(name).describe()
        lines.append(
            f"| {name} | synflow | {net} | {int(covered.sum())} | {rho:.3f} | {tau:.3f} "
            f"| {med:.4f} | {wall} | {pub} |"
        )
        rho, tau = _correlations(table.metrics["params"][covered], acc[covered])
        lines.append(
            f"| {name} | params (baseline) | - | {int(covered.sum())} | {rho:.3f} | {tau:.3f} "
            "| - | - | - |"
        )
        zeros, infs = int((synflow[covered] == 0).sum()), int(np.isinf(synflow[covered]).sum())
        lines.append(f"| {name} | (synflow = 0: {zeros} codes, inf: {infs}) | | | | | | | |")
    return lines


def _digits_batch(n: int) -> Tensor:
    """``n x 3 x 16 x 16`` float32 digits images (the embedded digits data, stand-in)."""
    import torch

    from ncp_hpo.trainers.datasets import get_dataset

    data = get_dataset("digits-cls", "train", image_size=16, seed=0, size=n)
    batch = torch.stack([data[i][0] for i in range(n)])
    if tuple(batch.shape[1:]) != (3, 16, 16):
        raise RuntimeError(f"digits batch has shape {tuple(batch.shape)}, expected n x 3 x 16 x 16")
    return batch


def _naswot_rows(cells: int, batch_size: int) -> list[str]:
    import torch

    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.zerocost import proxy_score

    torch.set_num_threads(1)
    table = load_benchmark("nas-bench-201")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(table), size=cells, replace=False)
    batch = _digits_batch(batch_size)
    scores, secs = [], []
    for i in pick:
        t0 = time.perf_counter()
        scores.append(proxy_score("nas-bench-201", table.codes[i], "naswot", batch=batch))
        secs.append(time.perf_counter() - t0)
    s = np.asarray(scores)
    acc = table.metrics["Acc"][pick]
    finite = np.isfinite(s)
    rho, tau = _correlations(s[finite], acc[finite])
    return [
        f"| nas-bench-201 | naswot on a {batch_size}-image digits minibatch (stand-in data) "
        f"| nb201 network, 120 classes, 3x16x16 | {int(finite.sum())} random cells "
        f"| {rho:.3f} | {tau:.3f} | {statistics.median(secs):.4f} | - | - |"
    ]


def _resolution_rows(benchmarks: list[str], n: int) -> list[str]:
    from dataclasses import replace

    from ncp_hpo.zerocost import load_scores
    from ncp_hpo.zerocost._targets import get_target, score_chunk

    lines = []
    for name in benchmarks:
        target = get_target(name)
        if target.kind != "multires":
            continue
        table = load_scores(name, "synflow")
        pick = np.random.default_rng(0).choice(len(table), size=min(n, len(table)), replace=False)
        big = replace(target, input_shape=(*target.input_shape[:-2], 128, 128))
        full, secs = score_chunk(big, "synflow", table.codes[pick])
        rho = float(stats.spearmanr(table.scores[pick], full).statistic)
        lines.append(
            f"- {name}: Spearman of synflow at {target.input_shape[-1]}x{target.input_shape[-1]}"
            f" vs 128x128 on {len(pick)} random table codes: {rho:.4f} (128x128: median "
            f"{statistics.median(secs.tolist()):.3f} s/code)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmarks",
        nargs="+",
        default=["nas-bench-201", "seg"],
        help="settings with a synflow table (default: nas-bench-201 seg; missing ones skipped)",
    )
    parser.add_argument("--naswot-cells", type=int, default=0, help="NB201 cells for NASWOT")
    parser.add_argument("--naswot-batch", type=int, default=64, help="NASWOT minibatch size")
    parser.add_argument(
        "--resolution-check", type=int, default=0, metavar="N", help="MR codes rescored at 128"
    )
    parser.add_argument("--out", type=Path, help="also write the markdown record here")
    args = parser.parse_args()

    command = "python benchmarks/zerocost_proxies.py " + " ".join(sys.argv[1:])
    lines = ["# Zero-cost proxies against the benchmark tables (issue 22, item 2)", ""]
    lines += ["Regenerate (after `ncp-hpo data proxies --benchmark <name> --jobs 2`):", ""]
    lines += ["```", command, "```", ""]
    lines += [f"Environment: {environment_line()}.", ""]
    lines += [f"Load average at the end: {os.getloadavg()[0]:.2f} (shared 2-core machine).", ""]
    lines += _table_rows(args.benchmarks)
    if args.naswot_cells:
        lines += _naswot_rows(args.naswot_cells, args.naswot_batch)
    if args.resolution_check:
        lines += ["", "Input resolution of the NAS-Bench-MR synflow scores:", ""]
        lines += _resolution_rows(args.benchmarks, args.resolution_check)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
