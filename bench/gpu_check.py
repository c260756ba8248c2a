"""The GPU check: every family on CUDA, in fp32 and in bf16-mixed, a few hundred steps each, with
its images per second beside the CPU's; exact resume on the GPU; a 2-GPU DDP run where there are
two GPUs; pythae's images per second where pythae is installed (bench/pythae_compare.py). Without
a GPU it says so and exits 0.

    python bench/gpu_check.py [--out runs/gpu-check] [--steps 200] [--families all]
        [--cpu-steps 20] [--data fashion-mnist] [--accelerator cuda]

``--accelerator cpu --steps 4 --cpu-steps 2`` runs the same code on the CPU (a dry run of the
script itself). Each step is one batch of 128 (every update step of the family on it). The speed runs
train in memory (``runs.fit`` with only a metrics log), the resume check in run directories;
nothing here writes outside ``--out``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from ssavae.config import build_run_config
from ssavae.data.datasets import locate
from ssavae.models import list_models
from ssavae.runlog import read_metrics
from ssavae.engine import MetricsLog
from ssavae.rundir import RunDir
from ssavae.runs import fit, train

BATCH = 128


def raw_config(family: str, data: str, accelerator: str, precision: str, steps: int, **train_extra) -> dict:
    return {"model": {"name": family},
            "data": {"name": data, "labels_per_class": 100 if data != "synthetic" else 20},
            "train": {"accelerator": accelerator, "devices": 1, "precision": precision, "batch_size": BATCH,
                      "max_steps": steps, "epochs": 1000, "log_every": 1, "progress": False, "sample_every": 0,
                      "guard": False, **train_extra}}


def images_per_second(run: Path) -> float:
    """From the metric rows' wall times: the batches after the first (compilation, allocations)."""
    rows = [r for r in read_metrics(run) if "time" in r]
    if len(rows) < 3:
        return float("nan")
    return (rows[-1]["step"] - rows[0]["step"]) * BATCH / max(rows[-1]["time"] - rows[0]["time"], 1e-9)


def speed(out: Path, family: str, data: str, accelerator: str, precision: str, steps: int) -> float:
    log = RunDir(out / f"{family}-{accelerator}-{precision}").metrics
    log.unlink(missing_ok=True)
    fit(build_run_config(raw_config(family, data, accelerator, precision, steps)), callbacks=[MetricsLog(log)])
    return images_per_second(log)


def resume_is_exact(out: Path, family: str, data: str, accelerator: str, steps: int) -> tuple[bool, bool]:
    """(two uninterrupted runs agree bitwise, a run stopped halfway and resumed agrees with them)."""
    def run(name: str, max_steps: int, resume: bool = False):
        cfg = build_run_config(raw_config(family, data, accelerator, "32-true", max_steps))
        return train(cfg, out / name, resume=resume).model.state_dict()

    for name in ("resume-a", "resume-b", "resume-cut"):
        shutil.rmtree(out / name, ignore_errors=True)
    a, b = run("resume-a", steps), run("resume-b", steps)
    run("resume-cut", steps // 2)
    c = run("resume-cut", steps, resume=True)
    same = lambda u, v: all(torch.equal(u[k], v[k]) for k in u)  # noqa: E731
    return same(a, b), same(a, c)


def ddp_images_per_second(out: Path, family: str, data: str, steps: int) -> float:
    """A 2-GPU run (Fabric launches the second process), in its own Python."""
    run = out / f"{family}-cuda-ddp2"
    shutil.rmtree(run, ignore_errors=True)
    cfg = raw_config(family, data, "cuda", "32-true", steps, devices=2, strategy="ddp")
    code = ("import sys, json; from ssavae.config import build_run_config; from ssavae.runs import train; "
            "train(build_run_config(json.loads(sys.argv[1])), sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, json.dumps(cfg), str(run)], check=True)
    return 2 * images_per_second(run)  # rows count one process's batches


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/gpu-check")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cpu-steps", type=int, default=20)
    ap.add_argument("--families", default="all")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--accelerator", default="cuda")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    if args.accelerator == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): skipped")
        return 0
    families = list_models() if args.families == "all" else args.families.split(",")
    data = args.data
    try:
        locate(data)
    except Exception:
        print(f"gpu_check: {data} is not on this machine; synthetic data instead")
        data = "synthetic"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if args.accelerator == "cuda" else "cpu"
    print(f"device: {device}; torch {torch.__version__}; {args.steps} steps of batch {BATCH} on {data}")
    print("| family | fp32 img/s | bf16-mixed img/s | bf16 / fp32 | CPU fp32 img/s | fp32 / CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    results = {}
    for family in families:
        fp32 = speed(out, family, data, args.accelerator, "32-true", args.steps)
        bf16 = speed(out, family, data, args.accelerator, "bf16-mixed", args.steps)
        cpu = speed(out, family, data, "cpu", "32-true", args.cpu_steps)
        results[family] = {"fp32": fp32, "bf16": bf16, "cpu": cpu}
        print(f"| {family} | {fp32:.0f} | {bf16:.0f} | {bf16 / fp32:.2f} | {cpu:.0f} | {fp32 / cpu:.1f} |", flush=True)
    for family in ("vae", "ssavae"):
        if family in families:
            deterministic, exact = resume_is_exact(out, family, data, args.accelerator, max(4, args.steps // 4))
            results[f"{family}_resume"] = {"two_runs_equal": deterministic, "resume_equal": exact}
            print(f"{family} on {args.accelerator}: two runs bitwise equal {deterministic}; "
                  f"stopped halfway and resumed, bitwise equal {exact}")
    if args.accelerator == "cuda" and torch.cuda.device_count() >= 2:
        for family in ("vae", "ssavae"):
            ips = ddp_images_per_second(out, family, data, args.steps)
            one = results.get(family, {}).get("fp32", float("nan"))
            print(f"{family} DDP on 2 GPUs: {ips:.0f} img/s ({ips / one:.2f}x one GPU)")
    else:
        print("DDP: fewer than 2 GPUs here, skipped")
    (out / "gpu_check.json").write_text(json.dumps({"device": device, "steps": args.steps, "results": results},
                                                   indent=2))
    try:
        import pythae  # noqa: F401
    except ImportError:
        print("pythae is not installed here: for its figures see bench/pythae_compare.py's docstring")
    else:
        here = Path(__file__).resolve().parent
        subprocess.run([sys.executable, str(here / "pythae_compare.py"), "--steps", "40", "--reps", "3"],
                       check=False, env=dict(os.environ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
