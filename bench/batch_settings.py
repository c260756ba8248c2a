"""Channels-last against the default (contiguous NCHW) memory format: the time of one batch of
every step of a family (loss and backward, as ``bench/step_cost.py`` runs it), the networks and
the images in each format, interleaved rep by rep so machine noise hits both alike.

    python bench/memory_format.py [--families vae,ssavae,vaegan,aae] [--reps 7] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from step_cost import example_batch, one_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="vae,ssavae,vaegan,aae")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, x_lab, y_lab = example_batch()
    last = torch.channels_last
    print(f"threads {args.threads}, batch 128 unlabeled + 64 labeled, median of {args.reps} interleaved reps")
    print("| family | NCHW s | channels-last s | channels-last / NCHW |\n|---|---:|---:|---:|")
    for name in args.families.split(","):
        torch.manual_seed(0)
        plain = one_batch(name, x, y, x_lab, y_lab)
        torch.manual_seed(0)
        cl = one_batch(name, x.to(memory_format=last), y, x_lab.to(memory_format=last), y_lab,
                       memory_format=last)
        plain(), cl()  # warm-up
        times: dict[str, list[float]] = {"plain": [], "cl": []}
        for _ in range(args.reps):
            for key, fn in (("plain", plain), ("cl", cl)):
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        a, b = statistics.median(times["plain"]), statistics.median(times["cl"])
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
