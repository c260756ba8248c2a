"""``ssavae demo``: the main job. SSAVAE with its defaults on Fashion-MNIST, then a VAE trained in
the same run on the same wall-clock budget, both evaluated alike; meant to finish within 10 minutes
on a 2-core CPU (0.4 measured 7.2 min on an idle one, evaluator training included: results.md).
It ends with SSAVAE's test accuracy, both families' reconstruction and sample metrics side by
side, and the paths of the reports and figures.

Layout: ``OUT/ssavae/`` and ``OUT/vae/`` (run directories, resumable), ``OUT/compare.md``,
``OUT/compare.html``, ``OUT/compare.json``, ``OUT/samples.png``. Running it again on a finished
``OUT`` trains nothing and prints the table again.
"""
from __future__ import annotations

from pathlib import Path

from .compare import evaluate_and_tabulate
from .config import apply_override, build_run_config, merge, to_dict
from .rundir import RunDir
from .runlog import read_metrics
from .runs import train_or_resume

# Defaults of the model; only the schedule is shortened so the demo fits its time budget.
DEMO = {
    "model": {"name": "ssavae", "vec_epochs": 3, "decoder_epochs": 1},
    "data": {"name": "fashion-mnist"},
    "train": {"batch_size": 128, "log_every": 50, "checkpoint_every": 200},
}
SHARED_MODEL_FIELDS = ("latent_dim", "arch", "channels", "hidden", "mlp_hidden", "upsample",
                       "likelihood", "sampler")  # what the VAE takes over from SSAVAE's config
N_EVAL = 2000  # test images per evaluation (the full evaluation: ssavae evaluate RUN_DIR)


def run_demo(out: str, data: str = "fashion-mnist", data_dir: str | None = None,
             overrides: list | None = None) -> Path:
    """Train SSAVAE, then the VAE for as long as SSAVAE trained, evaluate both; returns OUT."""
    out = Path(out)
    raw = {k: dict(v) for k, v in DEMO.items()}
    raw["data"]["name"] = data
    if data_dir:
        raw["data"]["data_dir"] = data_dir
    for key, value in overrides or []:
        apply_override(raw, key, value)
    cfg = build_run_config(raw)
    train_or_resume(cfg, out / "ssavae")
    seconds = read_metrics(RunDir(out / "ssavae").metrics)[-1]["time"]
    vae_model = {"name": "vae", **to_dict(cfg.model)}
    vae_model = {k: v for k, v in vae_model.items() if k in SHARED_MODEL_FIELDS + ("name",)}
    vae_raw = merge({k: v for k, v in raw.items() if k != "model"},
                    {"model": vae_model, "train": {"epochs": 10**6, "max_minutes": seconds / 60}})
    train_or_resume(build_run_config(vae_raw), out / "vae")
    evaluate_and_tabulate(out, ["ssavae", "vae"], f"the same wall-clock budget ({seconds:.0f} s)",
                          n_eval=N_EVAL, iw_samples=100)
    return out
