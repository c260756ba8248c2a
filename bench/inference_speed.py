"""Images per second of the inference API (encode, predict_proba, reconstruct, sample) beside a
bare pass of the same networks, in the same run.

The model is SSAVAE with the demo's networks (speed does not depend on the weights, so it is
not trained). The API splits its input into passes of ``inference_batch`` rows (1,024); the
reference is the encoder (or decoder) called directly under ``torch.no_grad`` on the same
chunks. Interleaved over ``--reps``; medians.

    python bench/inference_speed.py [--n 10240] [--batch 1024] [--reps 5] [--threads N]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from ssavae.config import build_run_config
from ssavae.data import DataInfo
from ssavae.runs import build_model


def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10240)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(build_run_config({"model": {"name": "ssavae"}, "data": {"name": "synthetic"}}),
                        DataInfo((1, 28, 28), 10, True)).eval()
    model.inference_batch = args.batch
    x = torch.rand(args.n, 1, 28, 28)
    z = torch.randn(args.n, model.cfg.latent_dim)

    @torch.no_grad()
    def bare_enc():
        for xb in x.split(args.batch):
            model.enc(xb)

    @torch.no_grad()
    def bare_dec():
        for zb in z.split(args.batch):
            torch.sigmoid(model.dec(zb))

    cases = {"encode": (lambda: model.encode(x), bare_enc),
             "predict_proba": (lambda: model.predict_proba(x), bare_enc),
             "reconstruct": (lambda: model.reconstruct(x), None),
             "sample": (lambda: model.sample(args.n), bare_dec)}
    for api, _ in cases.values():  # warm-up
        api()
    rates = {k: ([], []) for k in cases}
    for _ in range(args.reps):
        for k, (api, bare) in cases.items():
            rates[k][0].append(rate(api, args.n))
            if bare is not None:
                rates[k][1].append(rate(bare, args.n))
    print(f"ssavae networks, {args.n} images in passes of {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"median of {args.reps}")
    print("| call | images/s | bare pass of the same network | API / bare |\n|---|---:|---:|---:|")
    for k, (api, bare) in rates.items():
        a = statistics.median(api)
        if bare:
            b = statistics.median(bare)
            print(f"| {k} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
        else:
            print(f"| {k} | {a:,.0f} | - | - |")


if __name__ == "__main__":
    main()
