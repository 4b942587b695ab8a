"""GPU check: one architecture, one epoch per task on the GPU (bf16 autocast, channels_last),
its training throughput next to the CPU's (a few steps), as a Markdown table.

    python benchmarks/gpu_check.py [--device cuda] [--code CODE] [--out FILE.md]
    python benchmarks/gpu_check.py --device cpu --steps 2          # smoke test without a GPU

Needs only this repository and the installed package: the datasets are embedded
(``digits-cls``, ``digits-seg``, ``digits-video``, ``bev-det``), no benchmark data.

Every (task, device) measurement runs in its own child process under a hard wall-clock cap
(``--task-timeout`` for the main device, ``--cpu-timeout`` for the CPU baseline), so one slow
or hung task cannot eat the machine's time: a task over its cap shows ``timeout`` in the
table and the next one starts. In a child, a short warm-up run (``--warmup`` steps: CUDA
context, kernel selection, allocator) precedes the measured run, which trains the freshly
built network for one epoch (``--steps`` caps the steps), then evaluates it. ``samples/s`` is
training throughput (forward, backward and optimiser step, synchronised), ``epoch s`` the
training time of the measured epoch (``~``: extrapolated from capped steps). The CPU
baseline trains ``--cpu-steps`` steps with the same batch size in fp32 (torch's CPU
default), after its own warm-up step.

The architecture defaults to the NCP start code (``b, n = 2``; ``c, i, o = 64``; the paper's
Section 4.1), the code every NCP search begins from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ncp_hpo.search import TASKS

# measure the checkout this script belongs to (children too), not whatever copy is installed
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

START_CODE = "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"


# ---------------------------------------------------------------------------------------
# child: one (task, device) measurement, printed as one JSON line
# ---------------------------------------------------------------------------------------
def measure(
    task: str,
    code: str,
    *,
    device: str,
    amp: str,
    batch_size: int,
    steps: int | None,
    warmup: int,
    threads: int | None,
) -> dict[str, Any]:
    import torch

    from ncp_hpo.trainers import train_code
    from ncp_hpo.trainers.datasets import DEFAULT_DATASET, make_loaders

    if threads:
        torch.set_num_threads(threads)
    train_loader, _ = make_loaders(DEFAULT_DATASET[task], batch_size=batch_size, task=task)
    epoch_steps = len(train_loader)
    common: dict[str, Any] = {
        "task": task,
        "batch_size": batch_size,
        "device": device,
        "amp": amp,
        "progress": False,
    }
    if warmup > 0:
        train_code(code, epochs=1, max_steps_per_epoch=warmup, **common)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = train_code(code, epochs=1, max_steps_per_epoch=steps, **common)
    row = result.history[-1]
    done = min(epoch_steps, steps) if steps else epoch_steps
    out: dict[str, Any] = {
        "task": task,
        "dataset": DEFAULT_DATASET[task],
        "device": result.device,
        "device_name": _device_name(device),
        "amp": result.amp or "off",
        "batch_size": batch_size,
        "steps": done,
        "epoch_steps": epoch_steps,
        "epoch_s": row["epoch_time_s"],
        "samples_per_s": row["train_samples_per_s"],
        "metric": result.main_metric,
        "value": result.value,
        "gmacs": result.macs / 1e9,
        "params_m": result.params / 1e6,
        "threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return str(torch.cuda.get_device_name(torch.device(device)))
    return platform.processor() or platform.machine()


def _child(args: argparse.Namespace) -> int:
    res = measure(
        args.task[0],
        args.code,
        device=args.device,
        amp=args.amp,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
    )
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ---------------------------------------------------------------------------------------
# parent: run the children under their caps, print the table
# ---------------------------------------------------------------------------------------
def _run_child(argv: list[str], timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout ({timeout:.0f} s)"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res: dict[str, Any] = json.loads(line[len("RESULT ") :])
            res["wall_s"] = time.perf_counter() - t0
            return res
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:200]}"}


def _fmt(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, int | float) else "-"


def table(rows: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> str:
    head = (
        "| task | dataset | device | amp | batch | steps | epoch s | samples/s | "
        "CPU samples/s | speed-up | val metric | GMACs/sample | peak GiB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for main, cpu in rows:
        if "error" in main:
            lines.append(f"| {main.get('task', '?')} | | | | | | {main['error']} | | | | | | |")
            continue
        cpu_sps = cpu.get("samples_per_s") if cpu and "error" not in cpu else None
        cpu_cell = _fmt(cpu_sps, ".0f") if cpu is None or "error" not in cpu else cpu["error"]
        speed = (
            f"{main['samples_per_s'] / cpu_sps:.0f}x" if isinstance(cpu_sps, int | float) else "-"
        )
        steps = f"{main['steps']}/{main['epoch_steps']}"
        epoch_s = _fmt(main["epoch_s"], ".1f")
        if main["steps"] < main["epoch_steps"]:  # a capped run: the epoch is extrapolated
            epoch_s = "~" + _fmt(main["epoch_s"] / main["steps"] * main["epoch_steps"], ".1f")
        lines.append(
            f"| {main['task']} | {main['dataset']} | {main['device']} | {main['amp']} | "
            f"{main['batch_size']} | {steps} | {epoch_s} | "
            f"{_fmt(main['samples_per_s'], '.0f')} | {cpu_cell} | {speed} | "
            f"{main['metric']} {_fmt(main['value'], '.1f')} | {_fmt(main['gmacs'], '.3f')} | "
            f"{_fmt(main.get('peak_mem_gib'), '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--code", default=START_CODE, help="architecture (default: NCP start code)")
    p.add_argument("--amp", default=None, help="bf16 (default on CUDA), fp16, off (CPU default)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, help="cap the measured epoch's steps (default: all)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up steps before measuring")
    p.add_argument("--cpu-steps", type=int, default=3, help="CPU baseline steps (0: none)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--task-timeout", type=float, default=120.0, help="hard cap per task, s")
    p.add_argument("--cpu-timeout", type=float, default=90.0, help="hard cap per CPU baseline")
    p.add_argument("--out", help="also write the Markdown report here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    on_cpu = args.device == "cpu"
    args.amp = args.amp or ("off" if on_cpu else "bf16")
    if args.child:
        return _child(args)

    common = ["--code", args.code, "--batch-size", str(args.batch_size)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    t_start = time.perf_counter()
    rows: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for task in args.task:
        main_argv = [*common, "--task", task, "--device", args.device, "--amp", args.amp]
        main_argv += ["--warmup", str(args.warmup)]
        if args.steps:
            main_argv += ["--steps", str(args.steps)]
        res = _run_child(main_argv, args.task_timeout)
        res.setdefault("task", task)
        cpu = None
        if not on_cpu and args.cpu_steps > 0:
            cpu_argv = [*common, "--task", task, "--device", "cpu", "--amp", "off"]
            cpu_argv += ["--warmup", "1", "--steps", str(args.cpu_steps)]
            cpu = _run_child(cpu_argv, args.cpu_timeout)
        rows.append((res, cpu))
        print(f"{task}: {json.dumps(res)}", file=sys.stderr, flush=True)

    first = next((r for r, _ in rows if "error" not in r), {})
    import torch

    name = " (NCP start code)" if args.code == START_CODE else ""
    params = f"{first.get('params_m', float('nan')):.2f} M parameters (cls head)"
    steps = f"{args.steps} steps" if args.steps else "one epoch"
    threads = f", {args.threads} threads" if args.threads else ""
    cpu_desc = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{threads}"
    if on_cpu:
        setup = f"CPU run ({cpu_desc}): {steps} per task, fp32, batch {args.batch_size}."
    else:
        setup = (
            f"{steps.capitalize()} per task on `{args.device}` with {args.amp} autocast and "
            f"channels_last, batch {args.batch_size}, after {args.warmup} warm-up steps. "
            f"CPU column: {args.cpu_steps} fp32 steps, same batch ({cpu_desc})."
        )
    report = "\n".join(
        [
            f"# GPU check: {first.get('device_name', args.device)}"
            + (" (CPU smoke run)" if on_cpu else ""),
            "",
            f"Code `{args.code}`{name}, {params}. {setup}",
            f"torch {torch.__version__}, python {platform.python_version()}; total "
            f"{time.perf_counter() - t_start:.0f} s.",
            "",
            table(rows),
            "",
        ]
    )
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0 if all("error" not in r for r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
