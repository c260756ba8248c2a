"""The kill test: SSAVAE runs (both steps, a checkpoint after every batch) killed with SIGKILL at
random moments, resumed with the command that started them plus ``--resume`` (again after each
further kill) until they finish; each run's final weights are compared bitwise with an
uninterrupted run's. A kill that leaves a checkpoint's temporary file behind landed inside a
checkpoint write. One run in the default suite, ten under ``-m slow``
(``python -m pytest -m slow tests/test_kill.py``; docs/reliability.md)."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssavae.rundir import RunDir

pytestmark = pytest.mark.precision  # exact resume in the precision auto picks

ARGS = ["--model", "ssavae", "--data", "synthetic", "--data.limit_train", "512", "--data.limit_test", "64",
        "--data.labels_per_class", "16", "--model.arch", "mlp", "--model.hidden", "32",
        "--model.mlp_hidden", "[64]", "--model.vec_epochs", "3", "--model.decoder_epochs", "2",
        "--train.batch_size", "32", "--train.checkpoint_every", "1", "--train.progress", "false",
        "--train.sample_every", "0", "--train.threads", "1"]


def command(out: Path, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "ssavae", "train", "--out", str(out), *ARGS, *(["--resume"] if resume else [])]


def weights(run: Path) -> dict:
    return torch.load(RunDir(run).last, map_location="cpu", weights_only=True)["model"]


def started(run: Path) -> bool:
    return RunDir(run).resumable()


def killed_run(out: Path, rng: random.Random, span: float) -> dict:
    """One run, killed at random moments (the first within ``span`` seconds) until it finishes."""
    kills = in_write = 0
    while True:
        p = subprocess.Popen(command(out, started(out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:  # the first kill always lands before the end (a fresh run takes about span)
            p.wait(timeout=rng.uniform(0.1, 0.8 if kills == 0 else 1.0) * span)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            # a temporary checkpoint left behind (a resumed run clears them first)
            in_write += any(RunDir(out).checkpoints.glob(".*.tmp"))
            continue
        if p.returncode != 0:
            raise RuntimeError(f"{out}: exit {p.returncode}: {p.stderr.read().decode()[-2000:]}")
        return {"kills": kills, "inside_a_write": in_write,
                "temporaries_left": len(list(RunDir(out).checkpoints.glob(".*.tmp")))}


def run_kill_test(runs: int, seed: int, root: Path) -> list[dict]:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    subprocess.run(command(root / "reference"), check=True, stdout=subprocess.DEVNULL)
    span = time.perf_counter() - t0  # an uninterrupted run, start-up included
    ref = weights(root / "reference")
    results = []
    for i in range(runs):
        out = root / f"killed{i}"
        r = killed_run(out, rng, span)
        w = weights(out)
        r["bitwise_equal"] = w.keys() == ref.keys() and all(torch.equal(w[k], ref[k]) for k in ref)
        results.append(r)
    return results


def _check(results):
    assert sum(r["kills"] for r in results) >= 1  # the runs were interrupted
    assert all(r["bitwise_equal"] for r in results), results
    assert all(r["kills"] >= 1 and r["temporaries_left"] == 0 for r in results), results


def test_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    _check(run_kill_test(1, seed=1, root=tmp_path))


@pytest.mark.slow
def test_ten_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    results = run_kill_test(10, seed=0, root=tmp_path)
    for i, r in enumerate(results):
        print(f"run {i}: {r['kills']} kill(s), {r['inside_a_write']} inside a checkpoint write, final weights "
              f"bitwise equal: {r['bitwise_equal']}, temporary files left: {r['temporaries_left']}")
    _check(results)
    assert sum(r["inside_a_write"] for r in results) >= 1  # some kills landed inside a checkpoint write
