"""Engine overhead: images per second of the ssavae engine beside a bare PyTorch loop.

Both train the identical conv VAE (same initial weights, same batches of the same data, same
Adam and gradient clipping) for the same number of steps, interleaved A/B/A/B so machine noise
hits both alike. Prints each repetition and the median ratio engine / bare.

    python bench/engine_overhead.py [--steps 60] [--reps 3] [--batch-size 128] [--data fashion-mnist]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch

from ssavae.config import build_run_config
from ssavae.data import InMemoryLoader, load_dataset
from ssavae.data.readers import DataError
from ssavae.engine.run import build_model
from ssavae.engine.trainer import Trainer


def bare_loop(model, loader, steps, clip):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    it = loader.iterate(0)
    for _ in range(steps):
        batch = next(it)
        opt.zero_grad(set_to_none=True)
        loss = model.step_loss("vae", batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()


def engine_loop(cfg, model, loader, steps):
    with tempfile.TemporaryDirectory() as d:
        Trainer(cfg, d).fit(model, loader)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data", default="fashion-mnist")
    args = p.parse_args()
    try:
        ds = load_dataset(args.data)
    except DataError:
        ds = load_dataset("synthetic")
    raw = {"model": {"name": "vae", "latent_dim": 20},
           "data": {"name": ds.name},
           "train": {"epochs": 1, "batch_size": args.batch_size, "max_steps": args.steps,
                     "progress": False, "log_every": 50, "checkpoint_every": 10**9,
                     "sample_every": 0}}
    cfg = build_run_config(raw)
    torch.manual_seed(0)
    init = build_model(cfg, ds).state_dict()

    def fresh():
        m = build_model(cfg, ds)
        m.load_state_dict(init)
        return m

    def loader():
        return InMemoryLoader(ds.x_train, ds.y_train, args.batch_size, seed=0)

    n_params = sum(p.numel() for p in fresh().parameters())
    print(f"conv VAE, {n_params / 1e6:.2f} M parameters, data {ds.name}, batch {args.batch_size}, "
          f"{args.steps} steps, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    bare_loop(fresh(), loader(), 5, cfg.train.grad_clip)  # warm-up
    ratios = []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        bare_loop(fresh(), loader(), args.steps, cfg.train.grad_clip)
        t_bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine_loop(cfg, fresh(), loader(), args.steps)
        t_eng = time.perf_counter() - t0
        n = args.steps * args.batch_size
        ratios.append(t_eng / t_bare)
        print(f"rep {rep}: bare {n / t_bare:8.1f} img/s   engine {n / t_eng:8.1f} img/s   "
              f"engine time / bare time {t_eng / t_bare:.3f}")
    print(f"median engine/bare time ratio: {statistics.median(ratios):.3f} "
          f"(overhead {100 * (statistics.median(ratios) - 1):+.1f} %)")


if __name__ == "__main__":
    main()
