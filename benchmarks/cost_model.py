"""Speed and accuracy of the closed-form cost model (ncp_hpo.spaces.cost).

Prints, from one run:

* the analytic model's time for 10,000 codes (FLOPs + params, numpy), and for a
  propagation batch of 1,024 codes through ``flops_torch`` forward + backward;
* the time to get the same numbers by measuring built networks (build + count parameters
  + one ``FlopCounterMode`` forward at 128x128), on real CPU tensors and on the meta
  device (no arithmetic), per code and extrapolated to 10,000 codes, and the ratio;
* agreement with the NAS-Bench-MR columns over its 2,507 codes: max |params diff| (M)
  and max FLOPs relative error for both counting conventions.

All times are medians over repeats. Usage::

    python benchmarks/cost_model.py [--data-dir ../shared/nas-bench-mr] [--measured 6]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ncp_hpo.models import create_model
from ncp_hpo.spaces import MultiResolutionSpace, cost

REPO = Path(__file__).resolve().parents[1]


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_one(code: np.ndarray, device: str) -> tuple[int, int]:
    with torch.device(device):
        net = create_model(code, task="cls", num_classes=50).eval()
        x = torch.empty(1, 3, 128, 128)
    n_params = sum(p.numel() for p in net.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return n_params, counter.get_total_flops() // 2


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} refused")


def load_columns(data_dir: Path) -> dict[str, np.ndarray]:
    with open(data_dir / "cls-50-1000" / "trainval.pkl", "rb") as fh:
        rows = _NoGlobals(fh).load()
    return {
        "codes": np.array([r["embedding"] for r in rows], dtype=np.int64),
        "params": np.array([r["params"] for r in rows], dtype=np.float64),
        "flops": np.array([r["flops"] for r in rows], dtype=np.float64),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("NCP_HPO_DATA") or REPO.parent / "shared" / "nas-bench-mr"
    ap.add_argument("--data-dir", type=Path, default=Path(default_data))
    ap.add_argument("--measured", type=int, default=6, help="codes to build and measure")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    space = MultiResolutionSpace()
    codes = space.sample(10_000, seed=args.seed)

    def analytic() -> None:
        cost.flops(codes)
        cost.params(codes)

    t_analytic = median_time(analytic, args.repeats)
    x = torch.tensor(codes[:1024], dtype=torch.float32)

    def differentiable() -> None:
        xg = x.clone().requires_grad_()
        cost.flops_torch(xg).sum().backward()

    t_torch = median_time(differentiable, args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"analytic flops+params, 10,000 codes:          {t_analytic * 1e3:9.2f} ms")
    print(f"flops_torch fwd+bwd, 1,024 codes (float32):  {t_torch * 1e3:9.2f} ms")

    sample = codes[: args.measured]
    for device in ("cpu", "meta"):
        per_code = []
        for code in sample:
            t = time.perf_counter()
            n, f = measure_one(code, device)
            per_code.append(time.perf_counter() - t)
            assert n == int(cost.params(code)) and f == int(cost.flops(code)), code
        med = statistics.median(per_code)
        print(
            f"built + measured ({device:4s}), median per code:    {med * 1e3:9.2f} ms"
            f"  -> 10,000 codes ~ {med * 1e4:8.1f} s, {med * 1e4 / t_analytic:,.0f}x the analytic"
            f" model ({len(sample)} codes measured, all equal to it)"
        )

    if not (args.data_dir / "cls-50-1000" / "trainval.pkl").is_file():
        print(f"benchmark columns: skipped, no data under {args.data_dir}")
        return
    col = load_columns(args.data_dir)
    n = len(col["codes"])
    p_diff = np.abs(cost.params(col["codes"]) / 1e6 - col["params"]).max()
    print(f"NAS-Bench-MR ({n} codes), params:  max |diff| = {p_diff:.6f} M")
    for convention in ("thop", "macs"):
        f = cost.flops(col["codes"], convention=convention) / 1e9
        rel = f / col["flops"] - 1
        print(
            f"NAS-Bench-MR ({n} codes), flops ({convention}): max |rel err| = "
            f"{np.abs(rel).max():.2e} (min {rel.min():+.4f}, max {rel.max():+.4f})"
        )


if __name__ == "__main__":
    main()
