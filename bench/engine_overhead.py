"""Engine overhead: images per second of the ssavae engine beside a bare PyTorch loop.

Both train the identical conv VAE (same initial weights, same batches of the same data, same
Adam and gradient clipping), interleaved A/B/A/B so machine noise hits both alike. Each side is
timed for a short and a long run and the difference gives the steady per-step cost, so one-off
set-up (process group, first checkpoint, metrics file) does not count as per-step overhead; that
fixed cost is printed separately. Prints each repetition and the median ratio engine / bare.

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
from ssavae.runs import build_model
from ssavae.engine import Trainer
from ssavae.models import Batch


def bare_loop(model, loader, steps, clip):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    it = loader.iterate(0)
    for _ in range(steps):
        batch = next(it, None)
        if batch is None:  # next epoch (the engine reshuffles; the work per step is the same)
            it = loader.iterate(0)
            batch = next(it)
        opt.zero_grad(set_to_none=True)
        loss = model.vae_loss(Batch(*batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()


def engine_loop(cfg, model, loader, steps):  # steps: cfg.train.max_steps
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
           "train": {"epochs": 1000, "batch_size": args.batch_size, "max_steps": args.steps,
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
    short = 10

    def timed(fn, steps):
        t0 = time.perf_counter()
        fn(steps)
        return time.perf_counter() - t0

    def bare(steps):
        bare_loop(fresh(), loader(), steps, cfg.train.grad_clip)

    def engine(steps):
        c = build_run_config({**raw, "train": {**raw["train"], "max_steps": steps}})
        engine_loop(c, fresh(), loader(), steps)

    engine(short)  # warm-up of the engine's one-off imports (Fabric, rich, the figure code)
    ratios, fixed = [], []
    n = args.steps * args.batch_size
    for rep in range(args.reps):
        tb_short, tb_long = timed(bare, short), timed(bare, short + args.steps)
        te_short, te_long = timed(engine, short), timed(engine, short + args.steps)
        t_bare, t_eng = tb_long - tb_short, te_long - te_short
        ratios.append(t_eng / t_bare)
        fixed.append(te_short - tb_short)
        print(f"rep {rep}: bare {n / t_bare:8.1f} img/s   engine {n / t_eng:8.1f} img/s   "
              f"engine/bare per-step time {t_eng / t_bare:.3f}   engine fixed cost {fixed[-1]:.2f} s")
    med = statistics.median(ratios)
    print(f"median engine/bare per-step time ratio: {med:.3f} (overhead {100 * (med - 1):+.1f} %); "
          f"median fixed cost per run {statistics.median(fixed):.2f} s")


if __name__ == "__main__":
    main()
