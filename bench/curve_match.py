"""A speed setting against the reference on a real run: a family's default networks on
Fashion-MNIST, the same steps, the training loss curves of the setting (seed 0) beside the
reference (seeds 0 and 1). For each logged loss the setting trains the same when its distance to
the reference's seed 0 is no larger than the distance between the reference's two seeds (the
noise of a seed); with ``--seeds N``, the mean of those distances over seeds 0..N-1 (a single
pair of seeds is a noisy yardstick). Also prints each run's wall time as a ratio to the
reference's.

SSAVAE's curves are those of step 2 (the decoder against the frozen encoder): one VEC is trained
first (reference setting, seed 0, ``--vec-epochs``) and every run starts from it (``init_from``).

    python bench/curve_match.py OUT --setting precision=bf16-mixed --reference precision=32-true
    python bench/curve_match.py OUT --family vaegan --setting precision=bf16-mixed
    python bench/curve_match.py OUT --setting channels_last=true --reference channels_last=false
        [--family vae|ssavae|vaegan|aae|...] [--keys recon/loss,...] [--steps 300] [--window 50]
        [--seeds 1] [--threads 2] [--model.KEY VALUE ...]
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

# the logged losses compared by default: every update step's
KEYS = {"vae": ["vae/loss"], "ssavae": ["dec/loss", "disc/d_loss"],
        "vaegan": ["enc/loss", "dec/loss", "disc/d_loss"], "aae": ["recon/loss", "disc/d_loss", "gen/g_loss"]}


def base_raw(family: str, seed: int, model: dict) -> dict:
    return {"model": {"name": family, **model}, "data": {"name": "fashion-mnist"}, "seed": seed,
            "train": {"accelerator": "cpu", "log_every": 1, "progress": False, "sample_every": 0}}


def curves(out: Path, family: str, setting: dict, seed: int, steps: int, keys: list[str], model: dict,
           init_from=None) -> tuple[dict[str, list[float]], float]:
    raw = base_raw(family, seed, model)
    raw["train"].update(max_steps=steps, **setting)
    run = out / ("-".join(f"{k}={v}" for k, v in setting.items()) + f"-s{seed}")
    t0 = time.perf_counter()
    train(build_run_config(raw), run, init_from=init_from)
    seconds = time.perf_counter() - t0
    rows = read_metrics(run)
    missing = [k for k in keys if not any(k in r for r in rows)]
    if missing:
        raise SystemExit(f"{family} logs no {missing}; logged: {sorted({k for r in rows for k in r if '/' in k})}")
    return {k: [r[k] for r in rows if k in r] for k in keys}, seconds


def parse(text: str) -> dict:
    key, _, value = text.partition("=")
    return {key.removeprefix("train."): yaml.safe_load(value)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--family", default="vae")
    ap.add_argument("--keys", default=None, help="comma-separated logged losses (default: the family's steps')")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=1, help="setting seeds 0..N-1 against reference seeds 0..N")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vec-epochs", type=int, default=1, help="ssavae: epochs of the shared step 1")
    ap.add_argument("--setting", default="precision=bf16-mixed", help="train.KEY=VALUE")
    ap.add_argument("--reference", default="precision=32-true", help="train.KEY=VALUE")
    args, extra = ap.parse_known_args()
    model = {k.removeprefix("--model."): yaml.safe_load(v) for k, v in zip(extra[::2], extra[1::2])}
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    out = Path(args.out)
    keys = args.keys.split(",") if args.keys else KEYS.get(args.family, [])
    ref, new = parse(args.reference), parse(args.setting)
    init_from = None
    if args.family == "ssavae":  # step 2 from one shared step 1
        init_from = out / "vec"
        if not (init_from / "summary.json").exists():
            raw = base_raw("ssavae", 0, {**model, "vec_epochs": args.vec_epochs, "decoder_epochs": 0})
            raw["train"].update(ref)
            train(build_run_config(raw), init_from)
    plan = {f"reference seed {i}": (ref, i) for i in range(args.seeds + 1)}
    plan.update({f"setting seed {i}": (new, i) for i in range(args.seeds)})
    runs = {name: curves(out, args.family, setting, seed, args.steps, keys, model, init_from)
            for name, (setting, seed) in plan.items()}
    w = args.window
    print(f"{args.family}: setting {args.setting}, reference {args.reference}; mean training loss over windows "
          f"of {w} steps; {args.threads} threads")
    for key in keys:
        print(f"\n{key}\n\n| steps | " + " | ".join(runs) + " |")
        print("|---|" + "---:|" * len(runs))
        n = len(runs["reference seed 0"][0][key])
        for a in range(0, n, w):
            cells = [f"{statistics.mean(c[key][a:a + w]):.4g}" for c, _ in runs.values()]
            print(f"| {a + 1}-{min(a + w, n)} | " + " | ".join(cells) + " |")
        last = {k: statistics.mean(c[key][-w:]) for k, (c, _) in runs.items()}
        ref_last = [last[f"reference seed {i}"] for i in range(args.seeds + 1)]
        seed_gap = statistics.mean(abs(a - b) for a, b in zip(ref_last, ref_last[1:]))
        gap = statistics.mean(abs(last[f"setting seed {i}"] - ref_last[i]) for i in range(args.seeds))
        verdict = "within the noise of a seed" if gap <= seed_gap else "OUTSIDE the noise of a seed"
        print(f"\nlast {w} steps of {key}, mean over seeds: |setting - reference, same seed| = {gap:.4g}, "
              f"|reference seed s - seed s+1| = {seed_gap:.4g}: {verdict}")
    t_ref = runs["reference seed 0"][1]
    print("wall time: " + ", ".join(f"{k} {s:.1f} s ({s / t_ref:.2f}x)" for k, (_, s) in runs.items()))


if __name__ == "__main__":
    main()
