"""The engine's speed settings on one batch of each family: fp32 or bf16 autocast
(``train.precision``), contiguous NCHW or channels-last networks and images
(``train.channels_last``). One batch of every step of a family (loss and backward, as
``bench/step_cost.py`` runs it), the settings interleaved rep by rep so that machine noise hits
them alike; each setting's median as a ratio to fp32 NCHW.

    python bench/batch_settings.py [--families vae,ssavae,vaegan,aae] [--reps 7] [--threads 2]
        [--settings fp32,fp32-cl,bf16,bf16-cl]

bf16 is native on a CPU with AVX512-BF16 or AMX and emulated (about 10x slower) elsewhere; the
line printed first says which this CPU is.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ssavae.engine.device import cpu_has_native_bf16
from ssavae.models import list_models
from step_cost import example_batch, one_batch

SETTINGS = {"fp32": (False, False), "fp32-cl": (False, True), "bf16": (True, False), "bf16-cl": (True, True)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="vae,ssavae,vaegan,aae",
                    help="comma-separated, or 'all'; a family may carry model fields: aae:critic_codes=recon")
    ap.add_argument("--settings", default="fp32,fp32-cl,bf16,bf16-cl")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    families = list_models() if args.families == "all" else args.families.split(",")
    settings = args.settings.split(",")
    if settings[0] != "fp32" or set(settings) - set(SETTINGS):
        raise SystemExit(f"--settings: start with fp32 (the reference), then any of {', '.join(SETTINGS)}")
    x, y, x_lab, y_lab = example_batch()
    last = torch.channels_last
    print(f"native bf16: {cpu_has_native_bf16()}; threads {args.threads}; batch 128 unlabeled + 64 labeled; "
          f"median of {args.reps} interleaved reps; seconds, and each setting / fp32")
    print("| family | " + " | ".join(f"{s} s" for s in settings) + " | " +
          " | ".join(f"{s} / fp32" for s in settings[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(settings) - 1))
    for name in families:
        fns = {}
        for s in settings:
            bf16, cl = SETTINGS[s]
            torch.manual_seed(0)
            fmt = (lambda t: t.to(memory_format=last)) if cl else (lambda t: t)
            fns[s] = one_batch(name, fmt(x), y, fmt(x_lab), y_lab, memory_format=last if cl else None, bf16=bf16)
            fns[s]()  # warm-up
        times: dict[str, list[float]] = {s: [] for s in settings}
        for _ in range(args.reps):
            for s, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[s].append(time.perf_counter() - t0)
        med = {s: statistics.median(t) for s, t in times.items()}
        print(f"| {name} | " + " | ".join(f"{med[s]:.3f}" for s in settings) + " | " +
              " | ".join(f"{med[s] / med['fp32']:.2f}" for s in settings[1:]) + " |", flush=True)


if __name__ == "__main__":
    main()
