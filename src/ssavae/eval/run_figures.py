"""The figures every run ends with (and ``ssavae sample``/``complete`` draw), through the public
inference API only; the numbers are ``registry.summarize``'s."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import Dataset, to_float
from ..rundir import RunDir
from ..runlog import read_metrics
from . import figures as fig
from .infer import encode_all


def project_2d(codes: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D codes as they are; wider codes on their first two principal components."""
    if codes.shape[1] == 2:
        return codes, ("z1", "z2")
    centered = codes - codes.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T, ("PC1", "PC2")


@torch.no_grad()
def latent_lattice(model, lo=(-3.0, -3.0), hi=(3.0, 3.0), n: int = 20) -> torch.Tensor:
    """Decode a regular n x n lattice of a 2-D latent plane over [lo, hi] (row 0: z2 = hi[1],
    column 0: z1 = lo[0]), row by row: the decoded latent plane and the explorer's tiles."""
    z1, z2 = torch.linspace(lo[0], hi[0], n), torch.linspace(hi[1], lo[1], n)
    zz = torch.stack([z1.repeat(n), z2.repeat_interleave(n)], 1)
    return model.decode(zz.to(model.device))


def explorer_data(model, ds: Dataset, rd: RunDir, n: int = 20, points: int = 2000) -> list[Path]:
    """For a 2-D code: the decoded lattice over the test codes' range (``latent_lattice.png``)
    and what the report's latent explorer draws (RunDir.explorer: the range, the lattice's tile
    layout, test codes and labels)."""
    m = min(len(ds.x_test), points)
    codes = encode_all(model, ds.x_test[:m], None)
    lo, hi = np.percentile(codes, 1, axis=0), np.percentile(codes, 99, axis=0)
    lo, hi = lo - 0.1 * (hi - lo) - 1e-3, hi + 0.1 * (hi - lo) + 1e-3
    path = fig.save_grid(rd.figure("latent_lattice"), latent_lattice(model, lo, hi, n), nrow=n, scale=1)
    shape = ds.info.shape
    rd.write_json(rd.explorer, {"lo": lo.tolist(), "hi": hi.tolist(), "n": n,
                                "tile": {"w": shape[-1], "h": shape[-2], "pad": 2},
                                "codes": np.round(codes, 4).tolist(), "labels": ds.y_test[:m].tolist(),
                                "classes": list(ds.classes), "colors": fig.class_colors(len(ds.classes))})
    return [path]


@torch.no_grad()
def cluster_samples(model, ds: Dataset, per_cluster: int = 10, seed: int = 0) -> torch.Tensor:
    """``per_cluster`` samples of each learned cluster, one row per cluster (at most 30 rows)."""
    k = model.cluster_proba(to_float(ds.x_test[:1]).to(model.device)).shape[1]
    c = torch.arange(min(k, 30)).repeat_interleave(per_cluster)
    codes = model.sample_codes(len(c), c, torch.Generator().manual_seed(seed))
    return model.decode(codes.to(model.device))


@torch.no_grad()
def interpolations(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10,
                   y_a=None, y_b=None) -> torch.Tensor:
    """Decode codes on the straight line between encode(x_a[i]) and encode(x_b[i]):
    (n * steps, *shape), one row of ``steps`` images per pair (a conditional family decodes
    each row with the label of its first image)."""
    z_a, z_b = model.encode(x_a, y_a), model.encode(x_b, y_b)  # (n, latent_dim)
    t = torch.linspace(0, 1, steps, device=z_a.device)[None, :, None]  # (1, steps, 1)
    z = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (n, steps, latent_dim)
    y = y_a.repeat_interleave(steps) if y_a is not None else None
    return model.decode(z.flatten(0, 1), y)


@torch.no_grad()
def style_transfer(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A conditional family's style transfer (the poster's figure): each source image, then its
    code ``encode(x, y)`` decoded with every class: (n * (K + 1), *shape), one row per source."""
    k = model.num_classes
    z = model.encode(x, y)  # (n, latent_dim)
    classes = torch.arange(k, device=z.device).repeat(len(z))  # (n * K,)
    out = model.decode(z.repeat_interleave(k, 0), classes).view(len(z), k, *x.shape[1:])
    return torch.cat([x[:, None], out], 1).flatten(0, 1)


@torch.no_grad()
def completion_rows(model, ds: Dataset, count: int = 8, draws: int = 6, seed: int = 0,
                    start: int = 0) -> torch.Tensor:
    """For ``count`` test images: what the model is shown (unobserved pixels at mid-gray), the
    truth, then ``draws`` completions; (count * (draws + 2), *shape), one row per image."""
    x = to_float(ds.x_test[start:start + count]).to(model.device)
    m = model.observed_mask(len(x))
    shown = m * x + (1 - m) * 0.5
    comp = model.complete(x, draws, generator=torch.Generator().manual_seed(seed))
    return torch.cat([shown[:, None], x[:, None], comp], 1).flatten(0, 1)


@torch.no_grad()
def final_figures(model, ds: Dataset, rd: RunDir, seed: int = 0) -> list[Path]:
    """Reconstructions, samples, per-class samples, latent map (+ lattice for 2-D), curves."""
    figures = rd.figures
    model.eval()
    written = []
    if ds.info.is_image and model.generative:
        written += fig.epoch_figures(model, ds, figures, "final", seed)
        written.append(_interpolations(model, ds, figures))
        if model.conditional or model.class_sampling:
            k = min(ds.info.num_classes, 20)
            y = torch.arange(k).repeat_interleave(10).to(model.device)
            g = torch.Generator().manual_seed(seed)
            written.append(fig.labelled_grid(figures / "samples_per_class.png", model.sample(len(y), y=y, generator=g),
                                             nrow=10, row_labels=list(ds.classes)[:k]))
        if model.clusters and not model.class_sampling:  # one row per learned cluster
            rows = cluster_samples(model, ds, seed=seed)
            written.append(fig.labelled_grid(figures / "samples_per_cluster.png", rows, nrow=10,
                                             row_labels=[f"cluster {i}" for i in range(len(rows) // 10)]))
        if model.conditional:  # first column: the source; then its code decoded as each class
            x = to_float(ds.x_test[:10]).to(model.device)
            yt = torch.from_numpy(ds.y_test[:10]).to(model.device)
            written.append(fig.labelled_grid(figures / "style_transfer.png", style_transfer(model, x, yt),
                                             nrow=ds.info.num_classes + 1, col_labels=["source", *ds.classes]))
        if model.sequential:  # one row per draw: the canvas after each step, and as a GIF
            written += canvas_figures(model, ds, figures, seed)
        if model.code_dim == 2 and not model.conditional:
            written += explorer_data(model, ds, rd)
    if ds.info.is_image and model.completes:
        written.append(fig.labelled_grid(figures / "completions.png", completion_rows(model, ds, seed=seed),
                                         nrow=8, col_labels=["shown", "truth", *(f"draw {i}" for i in range(1, 7))]))
    written.append(_latent_map(model, ds, figures))
    curves = fig.curves(figures / "training_curves.png", read_metrics(rd.metrics), model.name)
    if curves:
        written.append(curves)
    return written


def canvas_figures(model, ds: Dataset, figures: Path, seed: int = 0, n: int = 8) -> list[Path]:
    """``canvas_steps.png`` (a row per draw, a column per step) and ``canvas.gif`` (the n draws
    side by side, a frame per step)."""
    y = torch.arange(n).remainder(ds.info.num_classes).to(model.device) if model.conditional else None
    steps = model.canvas_steps(n, y, generator=torch.Generator().manual_seed(seed)).cpu()  # (T, n, ...)
    grid = fig.save_grid(figures / "canvas_steps.png", steps.transpose(0, 1).flatten(0, 1),
                         nrow=len(steps))
    return [grid, fig.save_gif(figures / "canvas.gif", steps, nrow=n)]


def _interpolations(model, ds: Dataset, figures: Path) -> Path:
    n = min(8, len(ds.y_test) // 2)  # pairs (a small test set gives fewer rows)
    x = to_float(ds.x_test[:2 * n]).to(model.device)
    y = torch.from_numpy(ds.y_test[:2 * n]).to(model.device) if model.conditional else None
    rows = interpolations(model, x[:n], x[n:], y_a=None if y is None else y[:n],
                          y_b=None if y is None else y[n:])
    return fig.labelled_grid(figures / "interpolations.png", rows, nrow=10,
                             col_labels=["from", *[""] * 8, "to"])


def _latent_map(model, ds: Dataset, figures: Path) -> Path:
    """Test codes in the plane (2-D codes, or their first two principal components), with the
    classifier's decision regions underneath when it acts on 2-D codes."""
    n = min(len(ds.x_test), 5000)
    codes, axes = project_2d(encode_all(model, ds.x_test[:n], ds.y_test[:n] if model.conditional else None))
    decision = None
    if model.code_dim == 2 and model.has_latent_classifier:
        lo, hi = codes.min(0) - 0.5, codes.max(0) + 0.5
        xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1)).float().to(model.device)
        pred = model.predict_proba_latent(grid).argmax(1).cpu().numpy().reshape(xx.shape)
        decision = (xx, yy, pred)
    return fig.latent_map(figures / "latent_map.png", codes, ds.y_test[:n], ds.classes,
                          f"{model.name} on {ds.name}: test codes", decision, axes)
