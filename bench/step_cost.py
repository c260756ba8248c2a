"""Cost of one training batch per family, as a ratio to the VAE's, timed in the same process.

Each step's loss and backward on a mixed batch of 128 Fashion-MNIST-shaped images without
labels (the few-label regime: M2 then enumerates every class of every image) plus a labeled
stream of 64 for steps that read it, no optimizer, after one warm-up batch; the median of
``--reps`` batches. Families with two phases (ssavae) add both phases' steps. A ratio, so that a
loaded machine still gives a usable figure.

    python bench/step_cost.py [--families vae,vaegan,...] [--threads 1] [--reps 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
import yaml

from ssavae.config import build_run_config
from ssavae.data import DataInfo
from ssavae.models import Batch, list_models
from ssavae.runs import build_model


def one_batch(name: str, x, y, x_lab, y_lab, memory_format=None, bf16: bool = False):
    """A function that runs every step of family ``name`` (default config, 10 classes) on the
    batch once: loss and backward, no optimizer (the networks in ``memory_format`` if given; with
    ``bf16`` each loss under bf16 autocast and its backward outside it, as the engine does).
    ``name`` may carry model fields: ``aae:critic_codes=recon:latent_dim=2``."""
    cfg = build_run_config({"model": model_fields(name), "data": {"name": "synthetic"}})
    model = build_model(cfg, DataInfo(tuple(x.shape[1:]), 10, True))
    if memory_format is not None:
        model = model.to(memory_format=memory_format)
    steps = [s for phase in model.phases() for s in phase.steps]

    def run() -> None:
        b = Batch(x, y, x_lab, y_lab)
        for s in steps:
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
                out = s.loss(b)
            out.loss.backward()
            model.zero_grad(set_to_none=True)
    return run


def model_fields(spec: str) -> dict:
    """``family[:key=value...]`` -> the model section of a config (values read as YAML)."""
    name, *fields = spec.split(":")
    pairs = (f.split("=", 1) for f in fields)
    return {"name": name, **{k: yaml.safe_load(v) for k, v in pairs}}


def example_batch():
    """128 unlabeled Fashion-MNIST-shaped images and a labeled batch of 64 (seeded)."""
    torch.manual_seed(0)
    return (torch.rand(128, 1, 28, 28), torch.full((128,), -1),
            torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))


def median_seconds(fn, reps: int) -> float:
    """The median of ``reps`` calls after one warm-up call."""
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def batch_seconds(name: str, x, y, x_lab, y_lab, reps: int) -> float:
    return median_seconds(one_batch(name, x, y, x_lab, y_lab), reps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="vae,vaegan,cvae,cvae_cgan,ssavae,aae_semi,m2,draw")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, x_lab, y_lab = example_batch()
    families = args.families.split(",")
    unknown = {f.partition(":")[0] for f in families} - set(list_models())
    if unknown:
        raise SystemExit(f"unknown families {sorted(unknown)}; known: {', '.join(list_models())}")
    ref = batch_seconds("vae", x, y, x_lab, y_lab, args.reps)
    print(f"threads {args.threads}, batch 128 unlabeled + 64 labeled, median of {args.reps}")
    print("| family | seconds per batch | x vae |\n|---|---:|---:|")
    for name in families:
        sec = ref if name == "vae" else batch_seconds(name, x, y, x_lab, y_lab, args.reps)
        print(f"| {name} | {sec:.3f} | {sec / ref:.1f} |")


if __name__ == "__main__":
    main()
