"""SSAVAE with the demo's schedule (3 VEC epochs, 1 decoder epoch) on 1/4, 1/2 and all of
Fashion-MNIST's training set: wall time of the training (both steps, end-of-run summary and
figures included) and the process's peak resident memory, one fresh process per size.

    python bench/dataset_scaling.py OUT [--threads 2] [--fractions 0.25,0.5,1]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

TRAIN_SIZE = 60_000
SCHEDULE = ["--model", "ssavae", "--model.vec_epochs", "3", "--model.decoder_epochs", "1",
            "--data", "fashion-mnist", "--train.progress", "false", "--train.sample_every", "0"]

PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fractions", default="0.25,0.5,1")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for frac in map(float, args.fractions.split(",")):
        n = int(TRAIN_SIZE * frac)
        run = out / f"n{n}"
        cmd = [sys.executable, "-m", "ssavae", "train", "--out", str(run), *SCHEDULE,
               "--data.limit_train", str(n), "--train.threads", str(args.threads)]
        t0 = time.perf_counter()
        # a fresh wrapper per size, so that its children's peak is this run's alone
        done = subprocess.run([sys.executable, "-c", PEAK, *cmd], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_kib = int(done.stdout.strip().splitlines()[-1])
        summary = json.loads((run / "summary.json").read_text())
        rows.append({"train_images": n, "seconds": round(wall, 1), "peak_mib": round(peak_kib / 1024),
                     "test_accuracy": summary.get("classification.accuracy")})
        print(rows[-1], flush=True)
    (out / "scaling.json").write_text(json.dumps(rows, indent=2))
    base = rows[0]
    print(f"\nthreads {args.threads}\n| training images | seconds | x smallest | peak MiB | test accuracy |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['train_images']} | {r['seconds']} | {r['seconds'] / base['seconds']:.2f} | "
              f"{r['peak_mib']} | {r['test_accuracy']:.4f} |")


if __name__ == "__main__":
    main()
