"""The engine: determinism, checkpoints, exact resume, phases, init-from, multi-process, precision.

Every test here depends on what ``train.precision auto`` picks on this CPU; CI runs them again as
on a CPU of the other kind (``SSAVAE_NATIVE_BF16``, docs/design.md). Tests of the exact equality
of two paths pin ``32-true``; tests whose subject is bf16 pin ``bf16-mixed``."""
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssavae.config import build_run_config
from ssavae import checkpoint as ckpt_io
from ssavae.runlog import read_metrics
from ssavae.config import TrainConfig
from ssavae.engine import resolve_precision
from ssavae.runs import load_model, train

from conftest import family_raw, free_port, tiny_raw

pytestmark = pytest.mark.precision

# bench/bf16_spread.py --families vae: bf16 vs fp32 loss-curve gap, the largest of 10 seeds, times 3
BF16_GAP = 2.4e-4  # measured: max 8e-5 (seed 3), median 4e-5; fp32 seed against seed: min 4e-3


def run(tmp_path, name, family="vae", **sections):
    raw = family_raw(family, **sections)
    return train(build_run_config(raw), tmp_path / name)


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_layout_and_determinism(tmp_path):
    a = run(tmp_path, "a", train={"epochs": 2, "sample_every": 1})  # drawing figures changes no weight
    b = run(tmp_path, "b", train={"epochs": 2})
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt",
              "figures/samples_final.png", "figures/reconstructions_final.png", "figures/latent_map.png",
              "figures/interpolations.png", "figures/training_curves.png", "report.html"):
        assert (a.run_dir / f).exists(), f
    from ssavae.rundir import RunDir
    assert [p.name for p in RunDir(a.run_dir).epoch_figures()] == [  # after every epoch of the phase
        f"{kind}_train_epoch00{e}.png" for kind in ("reconstructions", "samples") for e in (1, 2)]
    assert not RunDir(b.run_dir).epoch_figures()
    assert same(weights(a.run_dir), weights(b.run_dir))
    rows_a, rows_b = read_metrics(a.run_dir), read_metrics(b.run_dir)
    assert [r["vae/loss"] for r in rows_a] == [r["vae/loss"] for r in rows_b]
    c = run(tmp_path, "c", train={"epochs": 2}, seed=1)
    assert not same(weights(a.run_dir), weights(c.run_dir))


def test_fit_leaves_the_models_trainable_flags_as_it_found_them(tmp_path):
    """update() freezes all but one step's groups at a time; after fit every parameter is
    trainable again (a second fit must not build optimizers over a subset), except those the
    user had frozen."""
    from ssavae.runs import build_model, make_streams, prepare_data
    from ssavae.engine import Trainer

    cfg = build_run_config(family_raw("ssavae"))
    ds, y = prepare_data(cfg)
    model = build_model(cfg, ds)
    for p in model.cls.parameters():
        p.requires_grad_(False)
    trainer = Trainer(cfg.train)
    loader, labeled = make_streams(cfg, ds, y, trainer.fabric)
    trainer.fit(model, loader, labeled)
    assert all(p.requires_grad != n.startswith("cls.") for n, p in model.named_parameters())


def test_checkpoint_is_plain_and_round_trips_values(tmp_path):
    r = run(tmp_path, "a")
    ck = ckpt_io.load(r.run_dir / "checkpoints" / "last.pt")  # weights_only=True inside
    assert ck["family"] == "vae" and ck["format_version"] == ckpt_io.FORMAT_VERSION and "rng" in ck
    model, cfg = load_model(r.run_dir)
    assert same(model.state_dict(), {k: v for k, v in r.model.state_dict().items()})
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.reconstruct(x), r.model.cpu().eval().reconstruct(x))
    old = dict(ck, format_version=1)  # ssavae 0.1: another parameter layout
    ckpt_io.save_atomic(old, r.run_dir / "checkpoints" / "old.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="retrain"):
        load_model(r.run_dir, "old.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt_io.CheckpointError, match="not a readable"):
        ckpt_io.load(tmp_path / "junk.pt")


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "c.pt"
    ckpt_io.save_atomic({"a": torch.ones(2)}, target)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        ckpt_io.save_atomic({"a": torch.zeros(2)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_last_epoch_checkpoints_are_kept_and_best_follows_the_chosen_metric(tmp_path, mode):
    r = run(tmp_path, mode, train={"epochs": 4, "keep_checkpoints": 2, "best_metric": "vae/loss", "best_mode": mode})
    ckpts = r.run_dir / "checkpoints"
    kept = sorted(p.name for p in ckpts.glob("epoch-*.pt"))
    assert kept == ["epoch-00000012-train-003.pt", "epoch-00000016-train-004.pt"]  # 4 batches an epoch
    rows = [row for row in read_metrics(r.run_dir) if "vae/loss" in row]
    means = [sum(x["vae/loss"] for x in rows if x["epoch"] == e) / 4 for e in range(4)]
    want = (min if mode == "min" else max)(range(4), key=means.__getitem__) + 1
    best = ckpt_io.load(ckpts / "best.pt")
    assert best["progress"]["best"]["epoch"] == want and best["progress"]["global_step"] == 4 * want
    assert best["progress"]["best"]["value"] == pytest.approx(means[want - 1], rel=1e-4)


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """The disk fills up in the middle of the 4th checkpoint write: the command exits 2 with one
    line, the 3rd checkpoint is intact (its checksum verifies), and --resume with the same
    command finishes at the uninterrupted run's weights."""
    import errno

    from ssavae.cli import main
    from conftest import tiny_cli

    argv = tiny_cli("vae", train={"epochs": 2, "checkpoint_every": 1})
    real_save, saves = torch.save, []

    def filling_disk(obj, f, *a, **k):
        saves.append(1)
        if len(saves) == 4:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", filling_disk)
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "previous checkpoint is intact" in err
    assert ckpt_io.load(tmp_path / "run/checkpoints/last.pt")["progress"]["global_step"] == 3
    assert [p.name for p in (tmp_path / "run/checkpoints").iterdir()] == ["last.pt"]  # no temporary left
    monkeypatch.setattr(torch, "save", real_save)
    assert main(["train", "--out", str(tmp_path / "run"), *argv, "--resume"]) == 0
    assert main(["train", "--out", str(tmp_path / "whole"), *argv]) == 0
    assert same(weights(tmp_path / "run"), weights(tmp_path / "whole"))


@pytest.mark.parametrize("model", ["vae", "ssavae", "ssavae-graph"])
def test_crash_then_resume_equals_uninterrupted_run_bitwise(tmp_path, monkeypatch, model):
    """A run that dies mid-training (here in step 2 for SSAVAE; in the VEC's second epoch, after
    its labels were propagated, for ssavae-graph) and is resumed from its last checkpoint ends
    with exactly the weights of a run that never stopped."""
    sections = dict(train={"epochs": 2, "checkpoint_every": 1})
    if model == "ssavae-graph":  # the propagated labels of the epoch must come back with the checkpoint
        model, sections["model"] = "ssavae", {"graph_weight": 1.0, "graph_k": 5, "graph_start": 1}
        sections["data"] = {"labels_per_class": 4}
    graph = "model" in sections
    from ssavae.engine import Trainer

    full = run(tmp_path, "full", model, **sections)
    original = Trainer.update
    calls = {"n": 0}
    # 4 batches per epoch; ssavae: 8 VEC steps, then 2 per batch
    crash_at = 6 if model == "vae" else 7 if graph else 20

    def flaky(self, step, batch):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise RuntimeError("power cut")
        return original(self, step, batch)

    monkeypatch.setattr(Trainer, "update", flaky)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tmp_path, "cut", model, **sections)
    monkeypatch.setattr(Trainer, "update", original)
    progress = ckpt_io.load(tmp_path / "cut" / "checkpoints" / "last.pt")["progress"]
    assert progress["global_step"] > 0 and progress["batch"] > 0  # cut inside an epoch
    if model == "ssavae":
        assert progress["completed"] == ([] if graph else ["vec"])  # graph: inside the VEC, else step 2
    cfg = build_run_config(family_raw(model, **sections))
    resumed = train(cfg, tmp_path / "cut", resume=True)
    assert same(weights(full.run_dir), weights(resumed.run_dir))
    steps = [r["step"] for r in read_metrics(resumed.run_dir)]
    assert steps == sorted(set(steps))  # one consistent history, no duplicated rows


def test_stop_request_saves_and_resume_finishes(tmp_path):
    from ssavae.engine import Trainer

    sections = dict(train={"epochs": 2, "checkpoint_every": 1000})
    full = run(tmp_path, "full", **sections)
    original = Trainer.update

    def stop_after_third(self, *a, **k):
        out = original(self, *a, **k)
        if self.progress["global_step"] == 2:  # the third batch is running
            self.request_stop()  # what Ctrl-C / SIGTERM do
        return out

    Trainer.update = stop_after_third
    try:
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, "stopped", **sections)
    finally:
        Trainer.update = original
    assert ckpt_io.load(tmp_path / "stopped/checkpoints/last.pt")["progress"]["global_step"] == 3
    resumed = train(build_run_config(tiny_raw("vae", **sections)), tmp_path / "stopped", resume=True)
    assert same(weights(full.run_dir), weights(resumed.run_dir))


def test_max_steps_then_resume_with_more_steps_equals_longer_run(tmp_path):
    full = run(tmp_path, "full", train={"epochs": 3})
    part = run(tmp_path, "part", train={"epochs": 3, "max_steps": 5})
    assert ckpt_io.load(part.run_dir / "checkpoints/last.pt")["progress"]["global_step"] == 5
    resumed = train(build_run_config(tiny_raw("vae", train={"epochs": 3})), part.run_dir, resume=True)
    assert same(weights(full.run_dir), weights(resumed.run_dir))


def test_existing_run_is_not_overwritten(tmp_path):
    from ssavae.config import ConfigError

    run(tmp_path, "a")
    with pytest.raises(ConfigError, match="already holds a run"):
        run(tmp_path, "a")


def test_init_from_skips_completed_phase_and_keeps_encoder(tmp_path):
    vec = run(tmp_path, "vec", "ssavae", model={"decoder_epochs": 0})
    ck = ckpt_io.load(vec.run_dir / "checkpoints/last.pt")
    assert ck["progress"]["completed"] == ["vec"]  # a 0-epoch phase is skipped, not completed
    cfg = build_run_config(family_raw("ssavae", model={"beta": 0.1}))
    cell = train(cfg, tmp_path / "cell", init_from=vec.run_dir)
    before, after = weights(vec.run_dir), weights(cell.run_dir)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("enc.", "cls.")))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("dec."))
    assert {r["phase"] for r in read_metrics(cell.run_dir)} == {"decoder"}


def test_overfit_batches_and_fast_dev_run(tmp_path):
    r = run(tmp_path, "o", train={"epochs": 2, "overfit_batches": 1})
    assert ckpt_io.load(r.run_dir / "checkpoints/last.pt")["progress"]["global_step"] == 2
    r = run(tmp_path, "f", "ssavae", train={"fast_dev_run": True, "epochs": 50})
    assert ckpt_io.load(r.run_dir / "checkpoints/last.pt")["progress"]["global_step"] == 4


@pytest.mark.parametrize("family,precision", [("ssavae", "32-true"), ("ssavae", "bf16-mixed"),
                                              ("vaegan", "auto"), ("aae_semi", "auto")])
def test_two_process_gloo_run_keeps_replicas_identical(tmp_path, family, precision):
    """The distributed path on CPU: 2 processes (gloo), gradients averaged by DDP's reducer, for
    families whose steps train different groups (two phases with a frozen encoder and an ex-post
    sampler fitted between them; a gated critic; three steps and the labeled stream), in fp32 and
    in bf16: every parameter and buffer (the fitted sampler's included) ends identical on both.
    The process group outlives ``train`` (the script gathers with it) and is destroyed before
    Python tears down, its threads joined (gloo's event loop and 2 workers: 3 threads fewer), on
    both processes: a gloo thread still alive in the teardown may abort the process ("terminate
    called without an active exception", in 1 of 10 to 20 runs on a loaded machine)."""
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import atexit, os, sys, torch, torch.distributed as dist
threads = lambda: len(os.listdir("/proc/self/task"))
at_exit = lambda: print("AT_EXIT", rank, dist.is_initialized(), threads() - after, flush=True)
atexit.register(at_exit)  # runs after the handler train registers
sys.path.insert(0, {os.path.dirname(__file__)!r})
from conftest import family_raw
from ssavae.config import build_run_config
from ssavae.runs import train
raw = family_raw({family!r}, train={{"devices": 2, "accelerator": "cpu", "strategy": "ddp", "epochs": 1,
                                    "precision": {precision!r}}})
res = train(build_run_config(raw), {str(tmp_path / 'run')!r})
state = res.model.state_dict()
flat = torch.cat([state[k].detach().double().flatten() for k in sorted(state)])
gathered = [torch.zeros_like(flat) for _ in range(2)]
dist.all_gather(gathered, flat)
rank, after = dist.get_rank(), threads()
if rank == 0:
    print("REPLICAS_EQUAL", bool(torch.equal(gathered[0], gathered[1])), len(state))
""")
    env = dict(os.environ, MASTER_PORT=str(free_port()), PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "REPLICAS_EQUAL True" in p.stdout
    at_exit = sorted(line.split()[1:] for line in p.stdout.splitlines() if line.startswith("AT_EXIT"))
    assert [(r, group) for r, group, _ in at_exit] == [("0", "False"), ("1", "False")], p.stdout
    assert all(int(change) <= -3 for _, _, change in at_exit), p.stdout  # gloo's threads joined
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"] == family
    auto = resolve_precision(TrainConfig(accelerator="cpu"))
    assert summary["precision"] == (precision if precision != "auto" else auto)


def test_a_port_in_use_is_a_clear_error_and_the_started_process_does_not_outlive_its_launcher(tmp_path):
    """MASTER_PORT held by another program (another distributed run, say): process 0 cannot open
    the rendezvous and stops with an error that names the port; process 1, which it had already
    started and which would otherwise wait in the rendezvous for half an hour, exits once its
    launcher is gone (the run returns within the timeout below only if it does)."""
    import socket

    script = tmp_path / "ddp.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from conftest import tiny_raw
from ssavae.config import build_run_config
from ssavae.runs import train
train(build_run_config(tiny_raw("vae", train={{"devices": 2, "accelerator": "cpu", "strategy": "ddp"}})),
      {str(tmp_path / 'run')!r})
""")
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90,
                           env=dict(os.environ, MASTER_PORT=str(port), PYTHONWARNINGS="ignore"), cwd=tmp_path)
    assert p.returncode != 0
    assert f"port {port} (MASTER_PORT) is already in use" in p.stderr, p.stderr[-2000:]
    alive = [c for c in Path("/proc").glob("[0-9]*/cmdline") if str(script).encode() in _read_or_empty(c)]
    assert not alive  # process 1 ended with its launcher (the pipes closed, so run() returned)


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended while we looked
        return b""


def test_two_processes_train_as_one_process_on_the_same_global_batch(tmp_path):
    """2 processes (gloo) with batch B each make the updates of 1 process with batch 2B: the ranks
    split each global batch (rank r takes every 2nd example of the shared order) and the engine
    averages their gradients. Plain SGD (Adam would hide a sum in place of a mean) and the
    posterior mean in place of a sample, so that the two runs draw no different noise. In fp32:
    in bf16 a batch of 16 and one of 32 round their products differently, which is not the
    subject here."""
    script = tmp_path / "global_batch.py"
    script.write_text(f"""
import sys, torch
sys.path.insert(0, {os.path.dirname(__file__)!r})
from conftest import tiny_raw
from ssavae import losses
from ssavae.config import build_run_config
from ssavae.runs import train
losses.reparameterize = lambda mu, logvar: mu
devices, batch, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
raw = tiny_raw("vae", train={{"devices": devices, "accelerator": "cpu", "batch_size": batch,
                             "epochs": 2, "optimizer": "sgd", "lr": 1e-4, "grad_clip": None, "precision": "32-true",
                             **({{"strategy": "ddp"}} if devices > 1 else {{}})}})
res = train(build_run_config(raw), out)
torch.save({{k: v.detach().clone() for k, v in res.model.state_dict().items()}}, out + ".pt")
""")
    env = dict(os.environ, MASTER_PORT=str(free_port()), PYTHONWARNINGS="ignore")
    finals = {}
    for devices, batch in ((1, 32), (2, 16)):
        out = str(tmp_path / f"run{devices}")
        p = subprocess.run([sys.executable, str(script), str(devices), str(batch), out],
                           capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        finals[devices] = torch.load(out + ".pt", weights_only=True)
    assert finals[1].keys() == finals[2].keys()
    for k, one in finals[1].items():
        assert torch.allclose(finals[2][k], one, rtol=1e-4, atol=1e-6), k


def test_two_processes_split_the_end_of_run_evaluation_and_agree_with_one(tmp_path):
    """The end-of-run metrics of a distributed run: each of 2 processes (gloo) classifies and
    reconstructs its half of the test set, and both end with the metrics one process computes
    over all of it (the rows gathered in order). The script launches Fabric itself, not through
    ``train``: the Fabric ``make_fabric`` builds still joins gloo's threads before Python's
    teardown (this script was seen to abort at exit without it)."""
    script = tmp_path / "sharded_eval.py"
    script.write_text(f"""
import atexit, json, os, sys, torch, torch.distributed as dist
threads = lambda: len(os.listdir("/proc/self/task"))
atexit.register(lambda: print("AT_EXIT", dist.is_initialized(), threads() - after, flush=True))
sys.path.insert(0, {os.path.dirname(__file__)!r})
from conftest import tiny_raw
from ssavae.config import build_run_config
from ssavae.engine import make_fabric
from ssavae.eval.infer import Shards, over_batches
from ssavae.eval.registry import summarize
from ssavae.runs import build_model, prepare_data
cfg = build_run_config(tiny_raw("ssavae", train={{"devices": 2, "accelerator": "cpu", "strategy": "ddp"}}))
fabric = make_fabric(cfg.train)
fabric.launch()
torch.manual_seed(0)
ds, _ = prepare_data(cfg)
model = build_model(cfg, ds).eval()
rows = []
predict = model.predict_proba
model.predict_proba = lambda x: (rows.append(len(x)), predict(x))[1]
alone = summarize(model, ds, {{}})
n_alone, rows[:] = sum(rows), []
split = summarize(model, ds, {{}}, Shards(fabric))
n_split = sum(rows)
y = torch.from_numpy(ds.y_test)
proba = [over_batches(model, ds.x_test, y, lambda xb, yb: model.predict_proba(xb), 7, shards)
         for shards in (None, Shards(fabric))]
with open(f"rank{{fabric.global_rank}}.json", "w") as f:
    json.dump({{"rank": fabric.global_rank, "n_test": len(ds.y_test), "alone": alone, "split": split,
               "rows_alone": n_alone, "rows_split": n_split, "same_rows": torch.allclose(*proba, rtol=1e-5, atol=1e-6)}}, f)
after = threads()
""")
    env = dict(os.environ, MASTER_PORT=str(free_port()), PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    at_exit = [line.split()[1:] for line in p.stdout.splitlines() if line.startswith("AT_EXIT")]
    assert len(at_exit) == 2 and all(g == "False" and int(d) <= -3 for g, d in at_exit), p.stdout
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in results:
        n = r["n_test"]
        assert r["rows_alone"] == n and r["rows_split"] == -(-n // 2) - (r["rank"] * (n % 2))
        assert r["same_rows"]  # every row's class probabilities, in order
        assert r["split"]["classification.accuracy"] == r["alone"]["classification.accuracy"]
        assert r["split"]["reconstruction.pixel_mse"] == pytest.approx(r["alone"]["reconstruction.pixel_mse"],
                                                                      rel=1e-5)
    assert results[0]["split"] == results[1]["split"]


def test_cosine_schedule_decays_within_each_phase_and_resumes_exactly(tmp_path):
    sections = dict(train={"epochs": 2, "lr_schedule": "cosine", "checkpoint_every": 1})
    full = run(tmp_path, "full", **sections)
    part = run(tmp_path, "part", train={**sections["train"], "max_steps": 3})
    # the checkpoint holds the rate of the batch it resumes with: batch 3 of the phase's 2n
    lr = ckpt_io.load(part.run_dir / "checkpoints/last.pt")["optimizers"]["vae"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 3 / full.summary["steps"])), rel=1e-9)
    resumed = train(build_run_config(tiny_raw("vae", **sections)), part.run_dir, resume=True)
    assert same(weights(full.run_dir), weights(resumed.run_dir))
    constant = run(tmp_path, "const", train={"epochs": 2})
    assert not same(weights(full.run_dir), weights(constant.run_dir))


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    r = run(tmp_path, "bf16", "ssavae", train={"precision": "bf16-mixed"})
    rows = read_metrics(r.run_dir)
    assert rows and all(torch.isfinite(torch.tensor(v)) for row in rows for k, v in row.items()
                        if "/" in k)
    assert {row["phase"] for row in rows} == {"vec", "decoder"}
    assert weights(r.run_dir)["dec.fc.0.weight"].dtype == torch.float32  # master weights stay fp32


def test_ex_post_sampler_is_fitted_after_step_1_and_used_by_step_2(tmp_path, monkeypatch):
    from ssavae.config import ConfigError
    from ssavae.nets import FittedGaussian

    fits = []
    original = FittedGaussian.fit
    monkeypatch.setattr(FittedGaussian, "fit", lambda self, *a: fits.append(len(a[0])) or original(self, *a))
    r = run(tmp_path, "cg", "ssavae", model={"sampler": "class-gaussian"})
    assert fits == [128]  # once, at the end of the VEC, on every training example
    prior = r.model.prior
    assert isinstance(prior, FittedGaussian) and prior.weights.sum() == pytest.approx(1.0)
    assert not torch.equal(prior.means, torch.zeros_like(prior.means))
    ck = ckpt_io.load(r.run_dir / "checkpoints" / "last.pt")
    assert torch.equal(ck["model"]["prior.means"], prior.means.cpu())  # saved with the model
    model, _ = load_model(r.run_dir)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(model.sample_codes(4, torch.tensor([0, 1, 2, 3]), g),
                       prior.cpu().sample(4, torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0)))
    vec = run(tmp_path, "vec", "ssavae", model={"decoder_epochs": 0, "sampler": "prior"})
    with pytest.raises(ConfigError, match="model.sampler"):
        train(build_run_config(family_raw("ssavae", model={"sampler": "gaussian"})), tmp_path / "cell",
              init_from=vec.run_dir)


def test_early_stopping_ends_the_classifying_phase_at_its_best_epoch_and_spares_the_decoder_phase(tmp_path):
    """A scripted validation score: the VEC phase (6 epochs) peaks after its 2nd epoch and then
    fails to improve twice (patience 2), so it ends after its 4th with the 2nd epoch's weights;
    the decoder phase leaves the score unchanged, so it trains all its epochs and keeps its last
    weights (not the first ones it saw)."""
    import copy

    from ssavae.engine import Callback, EarlyStopping

    vec_scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])
    phase_of, snaps = [None], []
    stopper = EarlyStopping(lambda m: next(vec_scores) if phase_of[0] == "vec" else 0.7, patience=2)

    class Snapshots(Callback):
        def on_epoch_end(self, trainer, phase, epoch):
            phase_of[0] = phase.name
            snaps.append((phase.name, copy.deepcopy(trainer.model.state_dict())))

    raw = family_raw("ssavae", train={"epochs": 6})
    result = train(build_run_config(raw), tmp_path / "es", callbacks=[Snapshots(), stopper])
    vec = [s for p, s in snaps if p == "vec"]
    dec = [s for p, s in snaps if p == "decoder"]
    assert len(vec) == 4 and len(dec) == 6 and stopper.stopped == {"vec": 3}
    final = result.model.state_dict()
    assert all(torch.equal(final[k], vec[1][k]) for k in final if k.startswith(("enc.", "cls.")))
    assert not all(torch.equal(final[k], vec[3][k]) for k in final if k.startswith("enc."))
    assert all(torch.equal(final[k], dec[-1][k]) for k in final if k.startswith("dec."))
    assert not all(torch.equal(final[k], dec[0][k]) for k in final if k.startswith("dec."))
    progress = ckpt_io.load(result.run_dir / "checkpoints" / "last.pt")["progress"]
    assert progress["completed"] == ["vec", "decoder"]


def test_an_in_memory_fit_writes_nothing_and_trains_as_a_run_directory_does(tmp_path, monkeypatch):
    """runs.fit: the same model as runs.train, with no directory, checkpoint, log or figure."""
    from ssavae.runs import fit

    a = run(tmp_path, "a", train={"epochs": 2})
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    b = fit(build_run_config(tiny_raw("vae", train={"epochs": 2})))
    assert b.run_dir is None and not list(Path.cwd().iterdir())
    assert same(a.model.state_dict(), b.model.state_dict())


def test_the_trainer_trains_a_tiny_model_without_a_directory_and_calls_its_callbacks_in_order(tmp_path, monkeypatch):
    """The engine alone: a Trainer built from train settings, no RunDir, no file written; each
    hook is called where the protocol says, and a callback's end_phase ends the phase."""
    from ssavae.engine import Callback, Trainer
    from ssavae.runs import build_model, make_streams, prepare_data

    monkeypatch.chdir(tmp_path)
    cfg = build_run_config(tiny_raw("vae", train={"epochs": 3, "log_every": 2}))
    ds, y = prepare_data(cfg)
    model = build_model(cfg, ds)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    class Record(Callback):
        def on_fit_start(self, trainer, resumed):
            calls.append(("fit_start", resumed))

        def on_phase_start(self, trainer, phase):
            calls.append(("phase_start", phase.name))

        def on_log(self, trainer, row):
            calls.append(("log", row["step"]))

        def on_epoch_end(self, trainer, phase, epoch):
            calls.append(("epoch_end", epoch))
            if epoch == 1:
                trainer.end_phase()

        def on_phase_end(self, trainer, phase):
            calls.append(("phase_end", phase.name))

        def on_fit_end(self, trainer):
            calls.append(("fit_end",))

    trainer = Trainer(cfg.train, callbacks=[Record()])
    loader, labeled = make_streams(cfg, ds, y, trainer.fabric)
    trainer.fit(model, loader, labeled)
    n = len(loader)
    assert calls[:2] == [("fit_start", False), ("phase_start", "train")] and calls[-2:] == [("phase_end", "train"),
                                                                                         ("fit_end",)]
    assert [c for c in calls if c[0] == "epoch_end"] == [("epoch_end", 0), ("epoch_end", 1)]  # ended after 2 of 3
    assert [c[1] for c in calls if c[0] == "log"][-1] == 2 * n and trainer.progress["global_step"] == 2 * n
    assert not all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not list(tmp_path.iterdir())  # no directory, no file


def test_precision_auto_uses_bf16_only_on_a_cpu_with_native_bf16(tmp_path, monkeypatch):
    from ssavae.config import ConfigError
    from ssavae.engine import device as trainer_mod
    from ssavae.engine.trainer import Trainer

    monkeypatch.delenv("SSAVAE_NATIVE_BF16", raising=False)
    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert not trainer_mod.cpu_has_native_bf16(str(avx2)) and trainer_mod.cpu_has_native_bf16(str(amx))
    assert not trainer_mod.cpu_has_native_bf16(str(tmp_path / "missing"))
    # the documented override answers either way, whatever the flags say
    for value, answer in (("1", True), ("0", False), ("true", True), ("no", False)):
        monkeypatch.setenv("SSAVAE_NATIVE_BF16", value)
        assert all(trainer_mod.cpu_has_native_bf16(str(info)) is answer for info in (avx2, amx))
    monkeypatch.setenv("SSAVAE_NATIVE_BF16", "maybe")
    with pytest.raises(ConfigError, match="SSAVAE_NATIVE_BF16='maybe'.*expected 1"):
        trainer_mod.cpu_has_native_bf16(str(amx))
    monkeypatch.delenv("SSAVAE_NATIVE_BF16")
    detect = trainer_mod.cpu_has_native_bf16
    for info, expected in ((amx, "bf16-mixed"), (avx2, "32-true")):
        monkeypatch.setattr(trainer_mod, "cpu_has_native_bf16", lambda p=str(info): detect(p))
        assert resolve_precision(TrainConfig(accelerator="cpu")) == expected
        assert resolve_precision(TrainConfig(accelerator="cpu", precision="32-true")) == "32-true"  # opt-out
    monkeypatch.setattr(trainer_mod, "cpu_has_native_bf16", lambda: True)
    trainer = Trainer(build_run_config(family_raw("vae", train={"accelerator": "cpu"})).train)
    assert trainer.precision == "bf16-mixed" and trainer.fabric._precision.precision == "bf16-mixed"


@pytest.mark.parametrize("first,then", [("1", "0"), ("0", "1")])
def test_a_run_names_its_precision_and_a_resume_on_the_other_kind_of_cpu_keeps_it(tmp_path, monkeypatch,
                                                                                  caplog, first, then):
    """``auto`` is decided once: the answer is printed, written to config.yaml (not ``auto``) and
    summary.json, and a run resumed on a CPU that answers the other way (the override stands in
    for moving the run) continues in its own precision, bitwise as if it had never stopped."""
    import yaml

    precision = {"1": "bf16-mixed", "0": "32-true"}[first]
    sections = dict(train={"epochs": 2, "accelerator": "cpu"})
    monkeypatch.setenv("SSAVAE_NATIVE_BF16", first)
    full = run(tmp_path, "full", **sections)
    part = run(tmp_path, "part", train={**sections["train"], "max_steps": 3})
    monkeypatch.setenv("SSAVAE_NATIVE_BF16", then)
    with caplog.at_level(logging.INFO, logger="ssavae.runs"):
        resumed = train(build_run_config(tiny_raw("vae", **sections)), part.run_dir, resume=True)
    assert f"precision: {precision} (train.precision auto: as the run being resumed trained)" in caplog.text
    for r in (full, resumed):
        assert yaml.safe_load((r.run_dir / "config.yaml").read_text())["train"]["precision"] == precision
        assert json.loads((r.run_dir / "summary.json").read_text())["precision"] == precision
    assert same(weights(full.run_dir), weights(resumed.run_dir))
    fresh = run(tmp_path, "fresh", **sections)  # a new run on this CPU answers for itself
    assert fresh.summary["precision"] != precision


def test_bf16_training_follows_fp32_within_the_measured_bf16_spread(tmp_path):
    """bf16 autocast is the subject: the tiny VAE's loss curves in bf16-mixed and in fp32 (same
    seed) differ by more than nothing (bf16 really ran) and by no more than BF16_GAP, three times
    the largest gap measured over 10 seeds (bench/bf16_spread.py, docs/performance.md); a seed
    moves it more than ten times further. Master weights in bf16, or a loss summed in bf16,
    move it past the tolerance."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from bf16_spread import gap, loss_curves

    fp32 = loss_curves("vae", 0, "32-true", 4, tmp_path)
    bf16 = loss_curves("vae", 0, "bf16-mixed", 4, tmp_path)
    other_seed = loss_curves("vae", 1, "32-true", 4, tmp_path / "other")
    assert 0 < gap(bf16, fp32) <= BF16_GAP
    assert gap(other_seed, fp32) > 10 * BF16_GAP


def test_conv_weights_train_channels_last_on_cpu_by_default_and_as_asked(tmp_path):
    """Channels-last is a memory layout: in fp32 it trains the weights NCHW trains, up to the
    rounding of another summation order (in bf16 oneDNN's kernels for the two layouts round
    differently, and the comparison would measure that, not the layout)."""
    conv = {"arch": "conv"}
    fp32 = {"precision": "32-true"}
    on = run(tmp_path, "on", model=conv, train=fp32)
    off = run(tmp_path, "off", model=conv, train={**fp32, "channels_last": False})
    w_on, w_off = on.model.enc.state_dict(), off.model.enc.state_dict()
    k = next(k for k, v in w_on.items() if v.dim() == 4 and v.shape[1] > 1)  # (1 channel: both at once)
    assert w_on[k].is_contiguous(memory_format=torch.channels_last) and not w_on[k].is_contiguous()
    assert w_off[k].is_contiguous()
    assert all(torch.allclose(w_on[n], w_off[n], atol=1e-4) for n in w_on)  # the same training, up to rounding


def test_resuming_through_the_python_api_refuses_a_changed_model_as_the_cli_does(tmp_path, capsys):
    """runs.train(resume=True) checks the config against the run's own: train.* may change, a
    changed model.beta is refused with the message `ssavae train --resume` prints, and the run's
    config.yaml is left as it was."""
    from ssavae import cli
    from ssavae.errors import ConfigError

    raw = family_raw("ssavae", train={"max_steps": 2})
    beta = train(build_run_config(raw), tmp_path / "r").model.cfg.beta
    saved = (tmp_path / "r" / "config.yaml").read_text()
    changed = family_raw("ssavae", model={"beta": 0.5}, train={"max_steps": 3})
    with pytest.raises(ConfigError) as api_error:
        train(build_run_config(changed), tmp_path / "r", resume=True)
    assert f"model.beta (saved {beta!r}, given 0.5)" in str(api_error.value)
    assert (tmp_path / "r" / "config.yaml").read_text() == saved
    assert cli.main(["train", "--out", str(tmp_path / "r"), "--resume", "--model.beta", "0.5"]) == 2
    assert " ".join(str(api_error.value).split()) in capsys.readouterr().err
    more = train(build_run_config(family_raw("ssavae", train={"max_steps": 3})), tmp_path / "r", resume=True)
    assert more.summary["steps"] == 3  # train.* may change


def test_rollback_after_a_nan_equals_the_last_good_checkpoint_then_the_steps_after_it(tmp_path, monkeypatch):
    """train.on_divergence rollback: a NaN loss at global step 6 (epoch 2 of 3, 4 batches each) sends
    the run back to the end of epoch 1 with the step's learning rate halved, and it finishes. Its
    weights equal those of the run stopped at the end of epoch 1 (the checkpoint rolled back to)
    and resumed with train.step_lr at half the rate, with no NaN. Without rollback the NaN stops it."""
    import dataclasses

    from ssavae.engine import trainer as trainer_mod
    from ssavae.errors import DivergenceError

    real, fired = trainer_mod.step_output, []

    def nan_once(step, batch, *args):
        out = real(step, batch, *args)
        if batch.step == 6 and not fired:
            fired.append(batch.step)
            return dataclasses.replace(out, loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(trainer_mod, "step_output", nan_once)
    fields = {"epochs": 3, "precision": "32-true", "checkpoint_every": 1000}
    a = run(tmp_path, "a", train={**fields, "on_divergence": "rollback"})
    assert fired == [6]
    progress = torch.load(a.run_dir / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert progress["global_step"] == 12 and progress["lr_factors"] == {"vae": 0.5}
    assert [(r["at_step"], r["back_to_step"], r["steps"]) for r in progress["rollbacks"]] == [(6, 4, ["vae"])]
    assert [r["step"] for r in read_metrics(a.run_dir)] == list(range(1, 13))  # the diverged rows replaced
    run(tmp_path, "b", train={**fields, "max_steps": 4})  # no NaN here (fired is not empty)
    train(build_run_config(family_raw("vae", train={**fields, "step_lr": {"vae": 0.0005}})), tmp_path / "b",
          resume=True)
    assert same(weights(a.run_dir), weights(tmp_path / "b"))
    fired.clear()
    with pytest.raises(DivergenceError, match="non-finite loss"):
        run(tmp_path, "c", train=fields)
