"""A speed setting against the reference on a real run: the conv VAE on Fashion-MNIST, the same
steps, the training loss curve of the setting (seed 0) beside the reference (seeds 0 and 1). The
setting trains the same when its distance to the reference's seed 0 is no larger than the
distance between the reference's two seeds (the noise of a seed). Also prints each run's wall
time as a ratio to the reference's.

    python bench/curve_match.py OUT --setting precision=bf16-mixed --reference precision=32-true
    python bench/curve_match.py OUT --setting channels_last=true --reference channels_last=false
        [--steps 300] [--window 50] [--threads 2]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import torch
import yaml

from ssavae.config import build_run_config
from ssavae.runlog import read_metrics
from ssavae.runs import train


def curve(out: Path, setting: dict, seed: int, steps: int) -> tuple[list[float], float]:
    raw = {"model": {"name": "vae"}, "data": {"name": "fashion-mnist"}, "seed": seed,
           "train": {"max_steps": steps, "accelerator": "cpu", "log_every": 1, "progress": False,
                     "sample_every": 0, "report": False, "checkpoints": False, **setting}}
    run = out / ("-".join(f"{k}={v}" for k, v in setting.items()) + f"-s{seed}")
    t0 = time.perf_counter()
    train(build_run_config(raw), run)
    seconds = time.perf_counter() - t0
    return [r["vae/loss"] for r in read_metrics(run) if "vae/loss" in r], seconds


def parse(text: str) -> dict:
    key, _, value = text.partition("=")
    return {key.removeprefix("train."): yaml.safe_load(value)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--setting", default="precision=bf16-mixed", help="train.KEY=VALUE")
    ap.add_argument("--reference", default="precision=32-true", help="train.KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    out = Path(args.out)
    ref, new = parse(args.reference), parse(args.setting)
    runs = {name: curve(out, setting, seed, args.steps)
            for name, (setting, seed) in {"reference seed 0": (ref, 0), "reference seed 1": (ref, 1),
                                          "setting seed 0": (new, 0)}.items()}
    w = args.window
    print(f"setting {args.setting}, reference {args.reference}; mean training loss (nats per image) over "
          f"windows of {w} steps; {args.threads} threads")
    print("| steps | " + " | ".join(runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for a in range(0, args.steps, w):
        cells = [f"{statistics.mean(c[a:a + w]):.2f}" for c, _ in runs.values()]
        print(f"| {a + 1}-{min(a + w, args.steps)} | " + " | ".join(cells) + " |")
    last = {k: statistics.mean(c[-w:]) for k, (c, _) in runs.items()}
    seed_gap = abs(last["reference seed 0"] - last["reference seed 1"])
    gap = abs(last["setting seed 0"] - last["reference seed 0"])
    print(f"last {w} steps: |setting - reference| = {gap:.2f} nats, |reference seed 0 - seed 1| = {seed_gap:.2f} nats")
    t_ref = runs["reference seed 0"][1]
    print("wall time: " + ", ".join(f"{k} {s:.1f} s ({s / t_ref:.2f}x)" for k, (_, s) in runs.items()))


if __name__ == "__main__":
    main()
