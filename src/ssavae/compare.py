"""``ssavae compare``: several families on the same data, the same labeled subset and the same
budget, evaluated alike; one table (markdown and HTML) and one figure of their samples.

Layout: ``OUT/<family>/`` a run directory per family (resumable), ``OUT/compare.md``,
``OUT/compare.html``, ``OUT/samples.png``. A family whose run and evaluation are complete is not
trained again.
"""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import torch

from . import config as config_mod
from .eval.registry import better, flatten, table_columns
from .eval.infer import labels_for
from .fileio import atomic_path
from .runlog import read_metrics
from .rundir import RunDir
from .runs import evaluate_run, load_model, train_or_resume

log = logging.getLogger(__name__)

def parse_budget(budget: str) -> dict:
    """``epochs=N`` or ``minutes=M`` -> train config fields."""
    kind, _, value = budget.partition("=")
    try:
        if kind == "epochs":
            return {"epochs": int(value)}
        if kind == "minutes":
            return {"max_minutes": float(value), "epochs": 10**6}
    except ValueError:
        pass
    raise config_mod.ConfigError(f"--budget must be epochs=N or minutes=M, got {budget!r}")


def run_compare(families: list[str], raw: dict, out: str | Path, budget: str,
                n_eval: int = 5000, iw_samples: int = 1000) -> Path:
    out = Path(out)
    train_fields = parse_budget(budget)
    for family in families:
        model_raw = {k: v for k, v in (raw.get("model") or {}).items() if k != "name"}
        cfg = config_mod.build_run_config(config_mod.merge(
            raw, {"model": {"name": family, **model_raw}, "train": train_fields}))
        train_or_resume(cfg, out / family)
    return evaluate_and_tabulate(out, families, budget, n_eval, iw_samples)


def evaluate_and_tabulate(out: Path, families: list[str], budget: str, n_eval: int = 5000,
                          iw_samples: int = 1000) -> Path:
    """Evaluate ``OUT/<family>`` for each family (unless done), then write the table in
    markdown, HTML and JSON and one row of samples per generative family."""
    rows = []
    for family in families:
        rd = RunDir(out / family)
        result = rd.read_json(rd.evaluation) or evaluate_run(rd, n=n_eval, iw_samples=iw_samples)
        history = read_metrics(rd.metrics)
        rows.append({"family": family, "train_seconds": history[-1]["time"] if history else None,
                     **flatten(result)})
    with atomic_path(out / "compare.json") as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    with atomic_path(out / "compare.md") as tmp:
        tmp.write_text(markdown_table(rows, budget))
    with atomic_path(out / "compare.html") as tmp:
        tmp.write_text(html_table(rows, budget))
    samples_figure(out / "samples.png", [(f, out / f) for f in families])
    return out


def _cell(row: dict, key: str) -> str:
    v = row.get(key)
    if v is None:
        return "n/a"
    if key == "train_seconds":
        return f"{v:.0f}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(key, header) of the metric columns that at least one family has."""
    return [(k, h) for k, h in table_columns() if any(r.get(k) is not None for r in rows)]


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, cells per row) with the metric columns that at least one family has."""
    cols = _columns(rows)
    head = ["family", "train time (s)"] + [h for _, h in cols]
    return head, [[r["family"], _cell(r, "train_seconds")] + [_cell(r, k) for k, _ in cols] for r in rows]


def markdown_table(rows: list[dict], budget: str) -> str:
    head, cells = _table(rows)
    lines = [f"Budget: {budget}; same data, labeled subset and seed for every family.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def best_rows(rows: list[dict], key: str) -> set[int]:
    """The rows holding the best value of ``key`` (``registry.better``: highest, lowest, or nearest
    1 for a ratio to real images); none for a column without a direction or with one value."""
    way = better(key)
    values = {i: r[key] for i, r in enumerate(rows) if isinstance(r.get(key), (int, float))}
    if way is None or len(values) < 2:
        return set()
    score = {i: (-v if way == "max" else v if way == "min" else abs(v - 1)) for i, v in values.items()}
    top = min(score.values())
    return {i for i, s in score.items() if s == top}


def html_table(rows: list[dict], budget: str) -> str:
    """The table, the best value of each column in bold (and marked for a screen reader)."""
    head, cells = _table(rows)
    keys = ["family", "train_seconds"] + [k for k, _ in _columns(rows)]
    best = {c: best_rows(rows, k) for c, k in enumerate(keys) if c > 1}
    body = "".join("<tr>" + "".join(f"<td class='best' title='best'><b>{html.escape(c)}</b></td>"
                                    if i in best.get(j, ()) else f"<td>{html.escape(c)}</td>"
                                    for j, c in enumerate(row)) + "</tr>" for i, row in enumerate(cells))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>ssavae compare</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
            "td.best{background:#e8f4e8}</style>"
            f"</head><body><p>Budget: {html.escape(budget)}; the best value of each column in bold.</p><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{body}</table></body></html>")


@torch.no_grad()
def samples_figure(path: Path, runs: list[tuple[str, Path]], n: int = 12) -> None:
    """One row of prior samples per family, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .eval.figures import figure_to_png

    loaded = [(name, m) for name, m in ((name, load_model(d)[0]) for name, d in runs) if m.generative]
    if not loaded or not loaded[0][1].info.is_image:
        return
    fig, axes = plt.subplots(len(loaded), n, figsize=(n * 0.8 + 1.2, len(loaded) * 0.9), squeeze=False)
    for r, (name, model) in enumerate(loaded):
        x = model.sample(n, labels_for(model, n), generator=torch.Generator().manual_seed(0)).cpu().numpy()
        for c in range(n):
            img = x[c]
            axes[r, c].imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    figure_to_png(fig, path)
