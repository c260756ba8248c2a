"""How far bf16 autocast moves training away from fp32, beside the noise of a seed: the
measurement behind the tolerance of ``tests/test_engine.py::test_bf16_training_follows_fp32``.

Tiny synthetic runs at the test suite's sizes (MLP networks, 128 training examples, batch 32, a
metric row per step). Per seed: the gap between the bf16-mixed and the fp32 loss curves of the
same seed (what bf16 changes), and between fp32 with this seed and fp32 with the next one (what
a seed changes). The gap of curve ``a`` to curve ``b``: for each logged loss, the mean over steps
of ``|a - b|`` over the mean of ``|b|``, then the largest over the losses.

    python bench/bf16_spread.py [--families vae,ssavae] [--seeds 10] [--epochs 4]

bf16 here is what ``--train.precision bf16-mixed`` runs: native on a CPU with AVX512-BF16 or AMX,
emulated (the same numbers, about 10x slower) on others.
"""
from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
from pathlib import Path

from ssavae.config import build_run_config
from ssavae.engine import MetricsLog
from ssavae.rundir import RunDir
from ssavae.runlog import read_metrics
from ssavae.runs import fit

RAW = {"model": {"arch": "mlp", "hidden": 32, "mlp_hidden": [64]},
       "data": {"name": "synthetic", "limit_train": 128, "limit_test": 64, "labels_per_class": 8},
       "train": {"batch_size": 32, "progress": False, "sample_every": 0, "log_every": 1,
                 "accelerator": "cpu", "threads": 1}}


def loss_curves(family: str, seed: int, precision: str, epochs: int, root: Path) -> dict[str, list[float]]:
    """Every logged ``*/loss`` of a tiny run, step by step."""
    raw = copy.deepcopy(RAW)
    raw["model"]["name"], raw["seed"] = family, seed
    raw["train"].update(epochs=epochs, precision=precision)
    log = RunDir(Path(root) / f"{family}-{precision}-s{seed}").metrics
    fit(build_run_config(raw), callbacks=[MetricsLog(log)])  # in memory, only the log written
    curves: dict[str, list[float]] = {}
    for row in read_metrics(log):
        for k, v in row.items():
            if k.endswith("/loss"):
                curves.setdefault(k, []).append(v)
    return curves


def gap(a: dict[str, list[float]], b: dict[str, list[float]]) -> float:
    """The largest, over the logged losses, of mean |a - b| over mean |b|."""
    assert a.keys() == b.keys() and all(len(a[k]) == len(b[k]) for k in a)
    return max(statistics.fmean(abs(u - v) for u, v in zip(a[k], b[k])) / statistics.fmean(abs(v) for v in b[k])
               for k in a)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="vae,ssavae")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            bf16_gaps, seed_gaps = [], []
            for seed in range(args.seeds):
                fp32 = loss_curves(family, seed, "32-true", args.epochs, Path(tmp))
                bf16 = loss_curves(family, seed, "bf16-mixed", args.epochs, Path(tmp))
                other = loss_curves(family, seed + 1, "32-true", args.epochs, Path(tmp) / "other")
                bf16_gaps.append(gap(bf16, fp32))
                seed_gaps.append(gap(other, fp32))
                print(f"{family} seed {seed}: bf16 vs fp32 {bf16_gaps[-1]:.2e}   fp32 seed {seed + 1} vs {seed} "
                      f"{seed_gaps[-1]:.2e}", flush=True)
            print(f"{family}: bf16 vs fp32 max {max(bf16_gaps):.2e} median {statistics.median(bf16_gaps):.2e}; "
                  f"seed vs seed min {min(seed_gaps):.2e} median {statistics.median(seed_gaps):.2e}")


if __name__ == "__main__":
    main()
