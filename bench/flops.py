"""How much of the machine a training batch uses: achieved GFLOP/s of each family's batch (every
step's forward and backward, as bench/step_cost.py runs it) against a large fp32 matrix multiply
timed in the same run, and where the batch's time goes.

FLOPs are counted by ``torch.utils.flop_counter`` (matrix products and convolutions, forward and
backward; elementwise work is not counted, so a batch dominated by it shows a low fraction).

    python bench/flops.py [--families vae,ssavae,...] [--threads 2] [--reps 5] [--profile vae]
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from step_cost import median_seconds, one_batch


def matmul_gflops(n: int, reps: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / median_seconds(lambda: a @ b, reps) / 1e9


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def profile(fn, top: int = 10) -> None:
    """The operators that take the batch's time (self CPU time, one batch after a warm-up)."""
    fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="vae,ssavae,vaegan,aae,aae_semi,cvae,m2,draw")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--matmul", type=int, default=2048, help="side of the reference matrix product")
    ap.add_argument("--profile", default="", help="families whose operator profile to print")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = torch.rand(128, 1, 28, 28), torch.full((128,), -1)
    x_lab, y_lab = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    ceiling = matmul_gflops(args.matmul, args.reps)
    print(f"threads {args.threads}; fp32 {args.matmul} x {args.matmul} matmul: {ceiling:.1f} GFLOP/s; "
          f"batch 128 unlabeled + 64 labeled, median of {args.reps}")
    print("| family | GFLOP per batch | seconds | GFLOP/s | of the matmul |\n|---|---:|---:|---:|---:|")
    for name in args.families.split(","):
        fn = one_batch(name, x, y, x_lab, y_lab)
        flops = counted_flops(fn)
        sec = median_seconds(fn, args.reps)
        print(f"| {name} | {flops / 1e9:.2f} | {sec:.3f} | {flops / sec / 1e9:.1f} | "
              f"{flops / sec / 1e9 / ceiling:.0%} |")
    for name in filter(None, args.profile.split(",")):
        print(f"\n{name}: operators by self CPU time")
        profile(one_batch(name, x, y, x_lab, y_lab))


if __name__ == "__main__":
    main()
