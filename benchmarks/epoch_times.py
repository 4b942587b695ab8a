"""CPU epoch times per task: a tiny code and the NCP start code, one epoch each, as a
Markdown table.

    python benchmarks/epoch_times.py [--threads 1] [--batch-size 32] [--steps N]

Each row trains a freshly built network for one epoch of the task's embedded dataset at its
default size (what ``ncp-hpo train --task T`` and ``ncp-hpo study`` run per epoch), after
one warm-up step in the same process, and reports the training time of that epoch
(forward, backward, optimiser; evaluation excluded), the training throughput and the
validation metric after the one epoch. ``--steps N`` caps the measured steps; the epoch time
is then extrapolated (marked ``~``). The numbers depend on the machine's load: the header
prints the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

# measure the checkout this script belongs to, not whatever copy is installed
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import ncp_hpo  # noqa: E402
from ncp_hpo.search import TASKS  # noqa: E402
from ncp_hpo.trainers import train_code  # noqa: E402
from ncp_hpo.trainers.datasets import DEFAULT_DATASET, make_loaders  # noqa: E402

CODES = {
    "tiny": "8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-8",
    "NCP start": "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64",
}


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def measure(task: str, code: str, *, batch_size: int, steps: int | None) -> dict[str, object]:
    """One epoch (or ``steps`` steps) of ``code`` on ``task``'s embedded dataset, on the CPU."""
    train_loader, _ = make_loaders(DEFAULT_DATASET[task], batch_size=batch_size, task=task)
    ds = train_loader.dataset
    opts: dict[str, Any] = {"task": task, "batch_size": batch_size, "device": "cpu", "amp": "off"}
    train_code(code, epochs=1, max_steps_per_epoch=1, progress=False, **opts)  # warm-up
    result = train_code(code, epochs=1, max_steps_per_epoch=steps, progress=False, **opts)
    row = result.history[-1]
    epoch_steps = len(train_loader)
    done = min(steps, epoch_steps) if steps else epoch_steps
    epoch_s = float(row["epoch_time_s"]) / done * epoch_steps
    return {
        "task": task,
        "dataset": DEFAULT_DATASET[task],
        "input": "x".join(map(str, getattr(ds, "input_size", ("?",)))),
        "train": len(ds),  # type: ignore[arg-type]
        "steps": f"{done}/{epoch_steps}",
        "epoch_s": ("" if done == epoch_steps else "~") + f"{epoch_s:.1f}",
        "samples_per_s": f"{row['train_samples_per_s']:.0f}",
        "mmacs": f"{result.macs / 1e6:.1f}",
        "params": f"{result.params / 1e6:.3f} M",
        "metric": f"{result.main_metric} {result.value:.1f}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--code", nargs="+", choices=list(CODES), default=list(CODES))
    p.add_argument("--batch-size", type=int, default=32, help="default 32 (the CLI's)")
    p.add_argument("--steps", type=int, help="cap the measured steps (epoch extrapolated)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before, t0 = _load(), time.perf_counter()
    rows = []
    for name in args.code:
        for task in args.task:
            r = measure(task, CODES[name], batch_size=args.batch_size, steps=args.steps)
            rows.append({"code": name, **r})
    cols = [
        ("code", "code"),
        ("task", "task"),
        ("dataset", "dataset"),
        ("input", "input"),
        ("train", "train samples"),
        ("steps", "steps"),
        ("epoch_s", "epoch s"),
        ("samples_per_s", "samples/s"),
        ("mmacs", "MMACs/sample"),
        ("params", "params"),
        ("metric", "val after 1 epoch"),
    ]
    print(
        f"CPU epoch times: {platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s), batch "
        f"{args.batch_size}, fp32; load average (1/5/15 min) {load_before} before, {_load()} "
        f"after; {time.perf_counter() - t0:.0f} s in all; ncp_hpo from "
        f"{Path(ncp_hpo.__file__).parent}."
    )
    print()
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k, _ in cols) + " |")


if __name__ == "__main__":
    main()
