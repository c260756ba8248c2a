"""Engine overhead: images per second of the ssavae engine beside a bare PyTorch loop.

Both train the identical networks of a family (same initial weights, same batches of the same
data, same Adam and gradient clipping), interleaved A/B/A/B so machine noise hits both alike.
The bare loop is what a careful hand-written loop does with the family's own losses: per batch,
for each step of the phase, only that step's parameters require gradients, zero_grad, loss,
backward, clip, Adam step. Each side is timed for a short and a long run and the difference gives
the steady per-step cost, so one-off set-up (process group, first checkpoint, metrics file) does
not count as per-step overhead; that fixed cost is printed separately. Prints each repetition and
the median ratio engine / bare. The first phase that trains is measured (``--set
model.vec_epochs=0`` measures SSAVAE's decoder step).

    python bench/engine_overhead.py [--family vae] [--steps 60] [--reps 3] [--batch-size 128]
        [--data fashion-mnist] [--set model.KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch
import yaml

from ssavae.config import build_run_config
from ssavae.data import InMemoryLoader, LabeledStream, apply_split, labeled_mask, load_dataset
from ssavae.data.readers import DataError
from ssavae.runs import build_model
from ssavae.engine import MetricsLog, Trainer
from ssavae.rundir import RunDir
from ssavae.models import Batch


def first_phase(model):
    return next(p for p in model.phases() if p.epochs != 0)


def bare_loop(model, loader, labeled, steps, clip):
    phase = first_phase(model)
    groups = model.param_groups()
    params = {s.name: [p for g in s.groups for p in groups[g]] for s in phase.steps}
    opts = {k: torch.optim.Adam(v, lr=1e-3) for k, v in params.items()}
    everything = list(model.parameters())
    model.train()
    for g in phase.frozen:
        getattr(model, g).eval()
    it = loader.iterate(0)
    for t in range(steps):
        batch = next(it, None)
        if batch is None:  # next epoch (the engine reshuffles; the work per step is the same)
            it = loader.iterate(0)
            batch = next(it)
        x, y = batch
        x_lab, y_lab = labeled.batch(t) if labeled is not None else (None, None)
        shared = {}
        for s in phase.steps:
            mine = {id(p) for p in params[s.name]}
            for p in everything:
                p.requires_grad_(id(p) in mine)
            opts[s.name].zero_grad(set_to_none=True)
            lab = s.data == "labeled"
            out = s.loss(Batch(x, y, x_lab if lab else None, y_lab if lab else None, t, t, shared))
            if out.skip:
                continue
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params[s.name], clip)
            opts[s.name].step()


def engine_loop(cfg, model, loader, labeled, steps):  # steps: cfg.train.max_steps
    with tempfile.TemporaryDirectory() as d:  # the engine with its metrics log, as a run has it
        Trainer(cfg.train, callbacks=[MetricsLog(RunDir(d).metrics)]).fit(model, loader, labeled)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--family", default="vae")
    p.add_argument("--set", action="append", default=[], metavar="model.KEY=VALUE")
    args = p.parse_args()
    try:
        ds = load_dataset(args.data)
    except DataError:
        ds = load_dataset("synthetic")
    model_fields = {"latent_dim": 20} if args.family == "vae" else {}
    for item in args.set:
        key, _, value = item.partition("=")
        model_fields[key.removeprefix("model.")] = yaml.safe_load(value)
    raw = {"model": {"name": args.family, **model_fields},
           "data": {"name": ds.name, "labels_per_class": 100},
           "train": {"epochs": 1000, "batch_size": args.batch_size, "max_steps": args.steps, "precision": "32-true",
                     "progress": False, "log_every": 50, "checkpoint_every": 10**9,
                     "sample_every": 0}}
    cfg = build_run_config(raw)
    torch.manual_seed(0)
    init = build_model(cfg, ds).state_dict()

    def fresh():
        m = build_model(cfg, ds)
        m.load_state_dict(init)
        return m

    y_train = apply_split(ds.y_train, labeled_mask(ds.y_train, 100, None, 0))

    def loader():
        return InMemoryLoader(ds.x_train, y_train, args.batch_size, seed=0)

    def labeled():
        return LabeledStream(ds.x_train, y_train, cfg.train.labeled_batch_size, seed=1)

    n_params = sum(p.numel() for p in fresh().parameters())
    print(f"{args.family} (phase {first_phase(fresh()).name}), {n_params / 1e6:.2f} M parameters, data {ds.name}, "
          f"batch {args.batch_size} + labeled {cfg.train.labeled_batch_size}, "
          f"{args.steps} steps, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    bare_loop(fresh(), loader(), labeled(), 5, cfg.train.grad_clip)  # warm-up
    short = 10

    def timed(fn, steps):
        t0 = time.perf_counter()
        fn(steps)
        return time.perf_counter() - t0

    def bare(steps):
        bare_loop(fresh(), loader(), labeled(), steps, cfg.train.grad_clip)

    def engine(steps):
        c = build_run_config({**raw, "train": {**raw["train"], "max_steps": steps}})
        engine_loop(c, fresh(), loader(), labeled(), steps)

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
