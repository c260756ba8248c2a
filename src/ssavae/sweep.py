"""The SSAVAE beta/gamma sweep (Zemouri 2020, Figure 9): one VEC, one decoder per cell.

Layout::

    OUT/vec/                       the step-1 run (decoder_epochs = 0), trained once
    OUT/cells/beta=B,gamma=G/      one run per cell, --init-from OUT/vec (step 2 only)
    OUT/sweep.json, OUT/sweep.md   the table: reconstruction (pixel and feature error, class
                                   kept, sharpness, texture, spectral peaks) and samples
                                   (Frechet, precision, recall, spectral peaks) per cell
    OUT/figure9.png                the same test inputs reconstructed by every cell

Resumable: a cell with a summary is not trained again; an interrupted one resumes.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from . import config as config_mod
from .errors import TrainingError
from .data import to_float
from .eval.evaluator import get_evaluator
from .eval.registry import evaluate_model, flatten
from .rundir import RunDir
from .runs import load_model, prepare_data, train_or_resume

log = logging.getLogger(__name__)

N_EVAL = 2000  # test images scored per cell
N_SHOWN = 12  # test inputs in the figure


def cell_name(beta: float, gamma: float) -> str:
    return f"beta={beta:g},gamma={gamma:g}"


# the table's columns: the metric registry's key, header
COLUMNS = [("reconstruction.pixel_mse", "pixel MSE"), ("reconstruction.encoder_feature_error", "feature error"),
           ("reconstruction.class_consistency", "class kept"),
           ("reconstruction.sharpness_vs_real", "sharpness / real"),
           ("reconstruction.texture_vs_real", "texture / real"),
           ("reconstruction.peaks_vs_real", "peaks / real"),
           ("generation.frechet_distance", "sample Frechet"), ("generation.precision", "P"),
           ("generation.recall", "R"), ("generation.peaks_vs_real", "sample peaks / real")]


@torch.no_grad()
def score_cell(model, ds, evaluator, n: int = N_EVAL) -> dict:
    """The evaluation layer's metrics on ``n`` test images (flat keys); the registry's
    ``reconstruction.encoder_feature_error`` is step 2's own L_rec."""
    return flatten(evaluate_model(model, ds, evaluator, n=n))


def run_sweep(raw: dict, out: str | Path, betas: list[float], gammas: list[float]) -> Path:
    """Train (or resume) the VEC and every cell, score them, write the table and Figure 9."""
    out = Path(out or "runs/sweep")
    raw = config_mod.merge(raw, {"model": {"name": "ssavae"}})
    vec_raw = config_mod.merge(raw, {"model": {"decoder_epochs": 0}})
    vec_dir = out / "vec"
    vec_cfg = config_mod.build_run_config(vec_raw)
    train_or_resume(vec_cfg, vec_dir)
    cells = [(b, g) for g in gammas for b in betas]
    failed = {}  # a cell that cannot train (e.g. stopped by the stability guard) is a result too
    for b, g in cells:
        cfg = config_mod.build_run_config(config_mod.merge(raw, {"model": {"beta": b, "gamma": g}}))
        try:
            train_or_resume(cfg, out / "cells" / cell_name(b, g), init_from=vec_dir)
        except TrainingError as e:
            log.warning("%s: %s", cell_name(b, g), e)
            failed[(b, g)] = str(e)

    _, cfg0 = load_model(vec_dir)
    ds, _ = prepare_data(cfg0)
    evaluator = get_evaluator(ds)
    rows = []
    shown = to_float(ds.x_test[:N_SHOWN])
    recon_rows, kept_rows = [], []
    for b, g in cells:
        if (b, g) in failed:
            rows.append({"beta": b, "gamma": g, "failed": failed[(b, g)]})
            continue
        rd = RunDir(out / "cells" / cell_name(b, g))
        model, _ = load_model(rd)
        scores = rd.read_json(rd.eval_file("sweep"))
        if scores is None:
            scores = score_cell(model, ds, evaluator)
            rd.write_json(rd.eval_file("sweep"), scores)
        rows.append({"beta": b, "gamma": g, **scores})
        r = model.reconstruct(shown)
        recon_rows.append(r)
        kept_rows.append(evaluator.predict(r) == torch.from_numpy(ds.y_test[:N_SHOWN]))
    summary = {"dataset": ds.name, "latent_dim": cfg0.model.latent_dim,
               "vec_test_accuracy": RunDir(vec_dir).read_json(RunDir(vec_dir).summary).get("classification.accuracy"),
               "evaluator_test_accuracy": evaluator.test_accuracy, "n_eval": min(N_EVAL, len(ds.y_test)),
               "cells": rows}
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    (out / "sweep.md").write_text(sweep_markdown(summary))
    if ds.info.is_image:
        figure9(out / "figure9.png", shown, recon_rows, kept_rows,
                [cell_name(b, g) for b, g in cells if (b, g) not in failed])
    return out


def sweep_markdown(s: dict) -> str:
    lines = [f"SSAVAE beta/gamma sweep on {s['dataset']}, latent_dim {s['latent_dim']} "
             f"(VEC test accuracy {s['vec_test_accuracy']:.4f}; evaluator test accuracy "
             f"{s['evaluator_test_accuracy']:.4f}; {s['n_eval']} test images per cell)", "",
             "| beta | gamma | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---:|---:|" + "---:|" * len(COLUMNS)]
    for r in s["cells"]:
        if "failed" in r:
            lines.append(f"| {r['beta']:g} | {r['gamma']:g} | stopped: {r['failed'].split(', so')[0]} |")
            continue
        vals = [r.get(k) for k, _ in COLUMNS]
        lines.append(f"| {r['beta']:g} | {r['gamma']:g} | " + " | ".join(
            "-" if v is None else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}" for v in vals) + " |")
    return "\n".join(lines) + "\n"


def figure9(path: Path, inputs: torch.Tensor, recon_rows: list[torch.Tensor],
            kept_rows: list[torch.Tensor], names: list[str]) -> Path:
    """Top row: test inputs; one row per cell; a green frame where the evaluator still sees the
    input's class, red where it does not (the paper's colour code)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .eval.figures import figure_to_png

    n = inputs.shape[0]
    rows = [("input", inputs, None)] + list(zip(names, recon_rows, kept_rows))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.8 + 1.6, len(rows) * 0.85), squeeze=False)
    for r, (name, imgs, kept) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            img = imgs[c].cpu().numpy()
            ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray",
                      vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if kept is not None:
                color = "tab:green" if bool(kept[c]) else "tab:red"
                for s in ax.spines.values():
                    s.set_edgecolor(color)
                    s.set_linewidth(2)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return figure_to_png(fig, path)
